"""Evaluation throughput: fastai's `learn.get_preds` vs a plain `torch.no_grad` loop, in fp32 and in bf16 (and fp16) autocast.

    python bench/eval.py --data ../shared/data/cifar10-jpeg.tgz
    python bench/eval.py --data ../shared/data/cifar10-jpeg.tgz --device cuda --n 10000   # fp16, bf16 and fp32 on the GPU

The same (untrained) model on the same test images (the first `--n` of the test set, fast path, batch size 512, channels_last);
the variants alternate round by round."""
import time, copy
from common import parser, header, round_line, report, precisions, now, autocast
import torch
from fastai.vision.all import ProgressCallback
from cifar_fastai.data import cifar_dls
from cifar_fastai.model import CifarResNet
from cifar_fastai.learner import cifar_learner

def fastai_eval(learn, dl):
    t = time.perf_counter(); preds, _ = learn.get_preds(dl=dl)
    return len(preds)/(time.perf_counter()-t)

def plain_eval(model, dl, precision):
    t, n = now(dl.device), 0
    with torch.no_grad(), autocast(dl.device, precision):
        for xb,_ in dl: n += len(model(xb.as_subclass(torch.Tensor)).argmax(1))
    return n/(now(dl.device)-t)

def main():
    p = parser(__doc__)
    p.add_argument('--n', type=int, default=2048, help='test images per measurement')
    a = p.parse_args(); header(a); ps = precisions(a)
    dls = cifar_dls(a.data, bs=a.bs, device=a.device)
    dl = dls.test_dl(dls.valid_ds.items[:a.n], with_labels=True)
    torch.manual_seed(0); init = CifarResNet(dls.c).eval()
    learns = {p: cifar_learner(dls, copy.deepcopy(init), precision=p) for p in ps}
    for l in learns.values(): l.remove_cb(ProgressCallback)
    plain = copy.deepcopy(init).to(dls.device).eval().to(memory_format=torch.channels_last)
    plain_eval(plain, dl, 'fp32')  # warm-up
    res = {f'{k}_{p}':[] for p in ps for k in ('fastai','plain')}
    for r in range(a.rounds):
        for p in ps:
            res['fastai_'+p].append(fastai_eval(learns[p], dl))
            res['plain_'+p].append(plain_eval(plain, dl, p))
        round_line(r, res)
    names = {f'fastai_{p}': f"fastai get_preds, fp32, {a.n} test images" if p=='fp32' else f"fastai get_preds, {p} autocast" for p in ps}
    names |= {f'plain_{p}': f"plain torch.no_grad loop, {p}" if p=='fp32' else f"plain torch.no_grad loop, {p} autocast" for p in ps}
    report(res, names, a.rounds, ps, a.json)

if __name__=='__main__': main()
