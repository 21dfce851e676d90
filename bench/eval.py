"""Evaluation throughput on the CPU: fastai's `learn.get_preds` vs a plain `torch.no_grad` loop, and channels_last vs not.

    python bench/eval.py --data ../shared/data/cifar10-jpeg.tgz

The same (untrained) model on the same test images (the first `--n` of the test set, fast path, batch size 512); the variants
alternate round by round."""
import time, copy
from common import parser, header, round_line, report
import torch
from fastai.vision.all import ProgressCallback
from cifar_fastai.data import cifar_dls
from cifar_fastai.model import CifarResNet
from cifar_fastai.learner import cifar_learner

def fastai_eval(learn, dl):
    t = time.perf_counter(); preds, _ = learn.get_preds(dl=dl)
    return len(preds)/(time.perf_counter()-t)

def plain_eval(model, dl):
    t, n = time.perf_counter(), 0
    with torch.no_grad():
        for xb,_ in dl: n += len(model(xb.as_subclass(torch.Tensor)).argmax(1))
    return n/(time.perf_counter()-t)

def main():
    p = parser(__doc__)
    p.add_argument('--n', type=int, default=2048, help='test images per measurement')
    a = p.parse_args(); header(a)
    dls = cifar_dls(a.data, bs=a.bs, device='cpu')
    dl = dls.test_dl(dls.valid_ds.items[:a.n], with_labels=True)
    torch.manual_seed(0); init = CifarResNet(dls.c).eval()
    learn = cifar_learner(dls, copy.deepcopy(init), mixed_precision=False, channels_last=False); learn.remove_cb(ProgressCallback)
    learn_cl = cifar_learner(dls, copy.deepcopy(init), mixed_precision=False, channels_last=True); learn_cl.remove_cb(ProgressCallback)
    plain = copy.deepcopy(init).eval()
    plain_cl = copy.deepcopy(init).eval().to(memory_format=torch.channels_last)
    plain_eval(plain, dl)  # warm-up
    res = dict(fastai=[], plain=[], fastai_cl=[], plain_cl=[])
    for r in range(a.rounds):
        res['fastai'].append(fastai_eval(learn, dl))
        res['plain'].append(plain_eval(plain, dl))
        res['fastai_cl'].append(fastai_eval(learn_cl, dl))
        res['plain_cl'].append(plain_eval(plain_cl, dl))
        round_line(r, res)
    report(res, dict(fastai=f"fastai get_preds (contiguous NCHW), {a.n} test images", plain="plain torch.no_grad loop",
                     fastai_cl="fastai get_preds, channels_last", plain_cl="plain torch.no_grad loop, channels_last"), a.rounds)

if __name__=='__main__': main()
