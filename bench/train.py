"""Training throughput on the CPU: our fastai Learner vs a plain PyTorch loop, in fp32 and in bf16 autocast, side by side.

    python bench/train.py --data ../shared/data/cifar10-jpeg.tgz

Each variant trains the same model from the same initial weights on the same batches (fast path, batch size 512, one-cycle
schedule, fastai's Adam / torch's AdamW with the same hyper-parameters, channels_last); the variants alternate round by round.
bf16 is `cifar_learner(precision='bf16')` for fastai and `torch.autocast('cpu', torch.bfloat16)` around the forward pass and the
loss for the plain loop. Throughput is images/s over the timed steps, after one untimed warm-up step."""
import time, copy
from common import parser, header, round_line, report
import torch, torch.nn.functional as F
from fastai.vision.all import Callback, CancelValidException, ProgressCallback, noop
from cifar_fastai.data import cifar_dls
from cifar_fastai.model import CifarResNet
from cifar_fastai.learner import cifar_learner

class Clock(Callback):
    "Time at the end of every training step; skip validation"
    def before_fit(self): self.ts = []
    def after_batch(self):
        if self.training: self.ts.append(time.perf_counter())
    def before_validate(self): raise CancelValidException

def rate(ts, bs): return (len(ts)-1)*bs/(ts[-1]-ts[0])  # the first step (warm-up) ends the untimed part

def fastai_run(dls, init, lr, precision):
    learn = cifar_learner(dls, copy.deepcopy(init), precision=precision)
    learn.recorder.train_metrics = True  # as `train` does
    learn.remove_cb(ProgressCallback); learn.logger = noop
    clock = Clock()
    learn.fit_one_cycle(1, lr, cbs=clock)
    return rate(clock.ts, dls.bs)

def plain_run(dls, init, lr, precision):
    model = copy.deepcopy(init).train().to(memory_format=torch.channels_last)  # what fastai's `ChannelsLast` does
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9,0.99), eps=1e-5, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=len(dls.train))
    ts = []
    for xb,yb in dls.train:
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=precision=='bf16'):
            loss = F.cross_entropy(model(xb.as_subclass(torch.Tensor)).float(), yb.as_subclass(torch.Tensor))
        loss.backward(); opt.step(); opt.zero_grad(); sched.step()
        ts.append(time.perf_counter())
    return rate(ts, dls.bs)

def main():
    p = parser(__doc__, rounds=3)
    p.add_argument('--steps', type=int, default=4, help='timed training steps per measurement (plus one warm-up step)')
    p.add_argument('--lr', type=float, default=1e-3)
    a = p.parse_args(); header(a)
    dls = cifar_dls(a.data, bs=a.bs, subset=(a.steps+1)*a.bs, seed=0, device='cpu')  # one epoch = warm-up + timed steps
    torch.manual_seed(0); init = CifarResNet(dls.c)
    res = {f'{k}_{p}':[] for p in ('fp32','bf16') for k in ('fastai','plain')}
    for r in range(a.rounds):
        runs = [(k, f, p) for p in ('fp32','bf16') for k,f in (('fastai', fastai_run), ('plain', plain_run))]
        for k,f,p in runs if r%2==0 else runs[::-1]:  # alternate which goes first
            res[f'{k}_{p}'].append(f(dls, init, a.lr, p))
        round_line(r, res)
    report(res, dict(fastai_fp32="fastai Learner (fit_one_cycle), fp32", plain_fp32="plain PyTorch loop (AdamW + OneCycleLR), fp32",
                     fastai_bf16="fastai Learner, bf16 autocast", plain_bf16="plain PyTorch loop, bf16 autocast"), a.rounds)

if __name__=='__main__': main()
