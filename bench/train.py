"""Training throughput: our fastai Learner vs a plain PyTorch loop, in fp32 and in bf16 (and fp16) autocast, side by side.

    python bench/train.py --data ../shared/data/cifar10-jpeg.tgz
    python bench/train.py --data ../shared/data/cifar10-jpeg.tgz --device cuda --steps 40   # fp16, bf16 and fp32 on the GPU

Each variant trains the same model from the same initial weights on the same batches (fast path, batch size 512, one-cycle
schedule, fastai's Adam / torch's AdamW with the same hyper-parameters, channels_last); the variants alternate round by round.
bf16 is `cifar_learner(precision='bf16')` for fastai and `torch.autocast('cpu', torch.bfloat16)` around the forward pass and the
loss for the plain loop; fp16 (the default on CUDA) adds a grad scaler to both. Throughput is images/s over the timed steps,
after one untimed warm-up step; on CUDA the clock waits for the GPU at the first and the last step only (a wait at every step
would hide the syncs that the Learner's callbacks may cause)."""
import time, copy
from common import parser, header, round_line, report, precisions, now, autocast
import torch, torch.nn.functional as F
from fastai.vision.all import Callback, CancelValidException, ProgressCallback, noop
from cifar_fastai.data import cifar_dls
from cifar_fastai.model import CifarResNet
from cifar_fastai.learner import cifar_learner

class Clock(Callback):
    "Time at the end of every training step (the first and the last after the device is done); skip validation"
    def before_fit(self): self.ts = []
    def after_batch(self):
        if self.training: self.ts.append(now(self.dls.device) if not self.ts else time.perf_counter())
    def after_train(self): self.ts[-1] = now(self.dls.device)
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
    dev = dls.device
    model = copy.deepcopy(init).to(dev).train().to(memory_format=torch.channels_last)  # what fastai's `ChannelsLast` does
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9,0.99), eps=1e-5, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=len(dls.train))
    scaler = torch.amp.GradScaler(torch.device(dev).type, enabled=precision=='fp16')  # as fastai's MixedPrecision in fp16
    ts = []
    for xb,yb in dls.train:
        with autocast(dev, precision):
            loss = F.cross_entropy(model(xb.as_subclass(torch.Tensor)).float(), yb.as_subclass(torch.Tensor))
        scaler.scale(loss).backward(); scaler.step(opt); scaler.update(); opt.zero_grad(); sched.step()
        ts.append(now(dev) if not ts else time.perf_counter())
    ts[-1] = now(dev)
    return rate(ts, dls.bs)

def main():
    p = parser(__doc__, rounds=3)
    p.add_argument('--steps', type=int, default=4, help='timed training steps per measurement (plus one warm-up step)')
    p.add_argument('--lr', type=float, default=1e-3)
    a = p.parse_args(); header(a); ps = precisions(a)
    dls = cifar_dls(a.data, bs=a.bs, subset=(a.steps+1)*a.bs, seed=0, device=a.device)  # one epoch = warm-up + timed steps
    torch.manual_seed(0); init = CifarResNet(dls.c)
    res = {f'{k}_{p}':[] for p in ps for k in ('fastai','plain')}
    for r in range(a.rounds):
        runs = [(k, f, p) for p in ps for k,f in (('fastai', fastai_run), ('plain', plain_run))]
        for k,f,p in runs if r%2==0 else runs[::-1]:  # alternate which goes first
            res[f'{k}_{p}'].append(f(dls, init, a.lr, p))
        round_line(r, res)
    names = {f'fastai_{p}': f"fastai Learner (fit_one_cycle), {p}" if p=='fp32' else f"fastai Learner, {p} autocast" for p in ps}
    names |= {f'plain_{p}': f"plain PyTorch loop (AdamW + OneCycleLR), {p}" if p=='fp32' else f"plain PyTorch loop, {p} autocast" for p in ps}
    report(res, names, a.rounds, ps, a.json)

if __name__=='__main__': main()
