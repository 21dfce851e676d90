"""Page's `new_dawn.py` (the `fast` recipe's source) re-written in plain PyTorch, line for line, as a control for our
fastai port (issue 18): the same data, machine and precision through Page's own training loop. If this reaches what our
`--recipe fast` reaches, the gap to Page's 94.1 % is the data (the JPEG copy) or the precision, not the port; if it
reaches more, the port differs somewhere.

    python tools/page_reference.py --data ../shared/data/cifar10-jpeg.tgz --out /work/runs/page-ref --epochs 10 --precision bf16
    python tools/page_reference.py --data ../shared/data/cifar10-jpeg.tgz --out /work/runs/page-ref --epochs 10 --precision bf16 --resume   # after a stop

What is Page's and kept (github.com/davidcpage/cifar10-fast, `new_dawn.py`, `torch_backend.py`, `core.py`): his
normalisation constants; reflect padding once, then per epoch a random crop and flip, each drawn from at most 200
options, each option applied to an equal share of the shuffled set (`transformed`, `max_options=200`); the whitening
from the uncentred covariance of the 3×3 patches of 10,000 training images, a fixed conv 3→27 then a learnt 1×1 conv
27→64 (two convolutions, not merged); GhostBatchNorm by `view(-1, C·16, H, W)` (every 16th image a split) with its
lazy collation of the split statistics when a model goes to eval; CELU α 0.3; max pool before BatchNorm; logits × 1/16;
label smoothing 0.2 with the loss summed over the batch; his `nesterov_update` with LR/512 and wd×512 (weights: LR 1.0
peak, 0 → epoch 2 → 0.1 at epoch 8, then held; biases ×64, wd ÷64), the LR read at the step counter after its increment;
an EMA of the whole state dict (0.99 every 5 steps, floats only) copied from the initial model; validation of the EMA
model with the mean logits of each image and its mirror.

What differs, and why: the images come from our uint8 cache of the JPEG copy (the data every run here uses), and the
10,000 images of the whitening are a seeded random draw (our training set is stored class by class, Page's in
CIFAR's shuffled order); the precision is torch's autocast (`bf16` on a CPU, `fp16` on CUDA) or `fp32`, where Page
cast the whole network but BatchNorm to fp16; BatchNorm runs on the autocast's output as his ran on fp16 input.
"""
import json, time, copy, argparse, sys
from pathlib import Path
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F

MEAN, STD = (125.31, 122.95, 113.87), (62.99, 62.09, 66.70)  # Page's `cifar10_mean`, `cifar10_std` (0–255 scale)

class GhostBatchNorm(nn.BatchNorm2d):
    "Page's `GhostBatchNorm` (torch_backend.py): weight frozen at 1, bias trained, `num_splits` running statistics"
    def __init__(self, c, num_splits=16):
        super().__init__(c); self.num_splits = num_splits
        self.weight.data.fill_(1.0); self.bias.data.fill_(0.0); self.weight.requires_grad = False
        self.register_buffer('running_mean', torch.zeros(c*num_splits)); self.register_buffer('running_var', torch.ones(c*num_splits))
    def train(self, mode=True):
        if self.training and not mode:  # lazily collate stats when we are going to use them
            self.running_mean = self.running_mean.view(self.num_splits, self.num_features).mean(0).repeat(self.num_splits)
            self.running_var = self.running_var.view(self.num_splits, self.num_features).mean(0).repeat(self.num_splits)
        return super().train(mode)
    def forward(self, x):
        N, C, H, W = x.shape
        if self.training:
            return F.batch_norm(x.reshape(-1, C*self.num_splits, H, W), self.running_mean, self.running_var,
                                self.weight.repeat(self.num_splits), self.bias.repeat(self.num_splits), True, self.momentum, self.eps).view(N, C, H, W)
        return F.batch_norm(x, self.running_mean[:C], self.running_var[:C], self.weight, self.bias, False, self.momentum, self.eps)

def conv_bn(c_in, c_out, pool=False):
    "conv 3×3 (no bias), [max pool 2], GhostBatchNorm, CELU(0.3): `new_dawn.py`'s `conv_bn`"
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), *([nn.MaxPool2d(2)] if pool else []), GhostBatchNorm(c_out), nn.CELU(0.3))

class Residual(nn.Module):
    def __init__(self, c): super().__init__(); self.res1, self.res2 = conv_bn(c, c), conv_bn(c, c)
    def forward(self, x): return x + self.res2(self.res1(x))

class Mul(nn.Module):
    def __init__(self, w): super().__init__(); self.w = w
    def forward(self, x): return x*self.w

def whitening_filter(x, eps=1e-2):
    "Page's `eigens(patches(x))` and `whitening_filter`: (27,3,3,3), largest eigenvalue first, from the uncentred covariance"
    p = x.unfold(2,3,1).unfold(3,3,1).transpose(1,3).reshape(-1, 3, 3, 3).double().reshape(-1, 27)
    p = p/np.sqrt(p.size(0) - 1)
    lam, V = torch.linalg.eigh(p.t() @ p)
    lam, V = lam.flip(0), V.t().reshape(27, 3, 3, 3).flip(0)
    return (V/torch.sqrt(lam+eps)[:,None,None,None]).float()

def net(w):
    "`net(weight=1/16, conv_bn=conv_bn, prep=whitening_block)` of `new_dawn.py`"
    whiten = nn.Conv2d(3, 27, 3, padding=1, bias=False); whiten.weight.data = w; whiten.weight.requires_grad = False
    return nn.Sequential(nn.Sequential(whiten, nn.Conv2d(27, 64, 1, bias=False), GhostBatchNorm(64), nn.CELU(0.3)),
                         nn.Sequential(conv_bn(64, 128, pool=True), Residual(128)), conv_bn(128, 256, pool=True),
                         nn.Sequential(conv_bn(256, 512, pool=True), Residual(512)),
                         nn.MaxPool2d(4), nn.Flatten(), nn.Linear(512, 10, bias=False), Mul(1/16))

def label_smoothing_loss(logits, y, alpha=0.2):
    "Per image: (1-α)·cross-entropy + α·mean over classes of −log p (Page's `label_smoothing_loss`)"
    lp = F.log_softmax(logits.float(), 1)
    return (1-alpha)*F.nll_loss(lp, y, reduction='none') - alpha*lp.mean(1)

def batches(x, y, bs, g, max_options=200):
    "Page's `GPUBatches(..., transforms=[Crop(32,32), FlipLR()], shuffle=True, drop_last=True, max_options=200)`: one epoch"
    for kind in ('crop', 'flip'):
        i = torch.randperm(len(x), generator=g, device='cpu').to(x.device); x, y = x[i], y[i]
        opts = [(a, b) for a in range(9) for b in range(9)] if kind=='crop' else [(True,), (False,)]
        opts = [opts[k] for k in torch.randperm(len(opts), generator=g).tolist()][:max_options]
        n, k = len(x), len(opts); sizes = [n//k + 1]*(n % k) + [n//k]*(k - n % k); out, s = [], 0
        for o, m in zip(opts, sizes):
            c = x[s:s+m]; s += m
            out.append(c[..., o[1]:o[1]+32, o[0]:o[0]+32] if kind=='crop' else (c.flip(-1) if o[0] else c))
        x = torch.cat(out)
    i = torch.randperm(len(x), generator=g, device='cpu').to(x.device); x, y = x[i], y[i]
    for s in range(0, len(x) - bs + 1, bs): yield x[s:s+bs].contiguous(memory_format=torch.channels_last), y[s:s+bs]

def piecewise(t, knots, vals): return float(np.interp(t, knots, vals))

def main(a):
    dev = torch.device(a.device or ('cuda' if torch.cuda.is_available() else 'cpu')); torch.manual_seed(a.seed); g = torch.Generator().manual_seed(a.seed)
    if a.tensors: d = torch.load(a.tensors); X, Y, n_train = d['x'], d['y'], int(d['n_train'])
    else:
        from cifar_fastai.source import cifar_source; from cifar_fastai.cache import cifar_cache
        c = cifar_cache(cifar_source(a.data)); X, Y, n_train = c.x, c.y, c.n_train
    norm = lambda u: ((u.float() - torch.tensor(MEAN).view(1,3,1,1))/torch.tensor(STD).view(1,3,1,1))
    xt, yt = norm(X[:n_train]), Y[:n_train]
    if a.subset: keep = torch.randperm(n_train, generator=g)[:a.subset]; xt, yt = xt[keep], yt[keep]
    xv, yv = norm(X[n_train:]).to(dev), Y[n_train:].to(dev)
    w = whitening_filter(xt[torch.randperm(len(xt), generator=g)[:10000]])
    xt, yt = F.pad(xt, (4,4,4,4), mode='reflect').to(dev), yt.to(dev)
    model = net(w).to(dev).to(memory_format=torch.channels_last); valid_model = copy.deepcopy(model)
    params = {k: p for k, p in model.named_parameters() if p.requires_grad}
    groups = [[p for k,p in params.items() if 'bias' not in k], [p for k,p in params.items() if 'bias' in k]]
    vel = [[torch.zeros_like(p) for p in grp] for grp in groups]
    bs, n_iter = a.bs, len(xt)//a.bs
    knots, vals = [0, a.epochs/5, a.epochs - 2], [0, 1.0, 0.1]
    amp = dict(device_type=dev.type, dtype=torch.bfloat16 if a.precision=='bf16' else torch.float16, enabled=a.precision!='fp32')
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True); hist, step, n_ema, t0, start = [], 0, 0, time.time(), 0
    ck = out/'checkpoint.pt'
    if a.resume:  # everything the next epoch reads: both models (and whether the average has left training mode), velocities, counters, RNGs
        if not ck.exists(): print(f"page_reference: error: --resume: no {ck}", file=sys.stderr); sys.exit(2)
        st = torch.load(ck, map_location=dev, weights_only=False)
        if st['args'] != _same(vars(a)): print(f"page_reference: error: --resume with other arguments than the checkpoint's: {st['args']}", file=sys.stderr); sys.exit(2)
        model.load_state_dict(st['model']); valid_model.train(st['valid_training']); valid_model.load_state_dict(st['valid'])  # its mode first: leaving training collates
        for vs, saved in zip(vel, st['vel']):
            for v, w in zip(vs, saved): v.copy_(w)
        hist, step, n_ema, start = st['hist'], st['step'], st['n_ema'], st['epoch']
        g.set_state(st['g']); torch.set_rng_state(st['rng']); t0 -= hist[-1]['total_s'] if hist else 0
        print(f"resuming after epoch {start}", flush=True)
    for ep in range(start, a.stop_after or a.epochs):  # the schedule is the `--epochs` one, even when stopped early
        model.train(); tl, tc, tn, te = 0., 0, 0, time.time()
        for xb, yb in batches(xt, yt, bs, g):
            with torch.autocast(**amp): logits = model(xb)
            loss = label_smoothing_loss(logits, yb)
            model.zero_grad(); loss.sum().backward()
            step += 1; lr = piecewise(step/n_iter, knots, vals)
            with torch.no_grad():
                for grp, vs, lr_g, wd in ((groups[0], vel[0], lr/bs, 5e-4*bs), (groups[1], vel[1], lr*64/bs, 5e-4*bs/64)):
                    for p, v in zip(grp, vs):  # `nesterov_update(w, dw, v, lr, weight_decay, momentum)`
                        dw = p.grad.add(p, alpha=wd).mul_(-lr_g); v.mul_(0.9).add_(dw); p.add_(dw.add_(v, alpha=0.9))
                if n_ema % 5 == 0:  # `update_ema(momentum=0.99, update_freq=5)`
                    for v, e in zip(model.state_dict().values(), valid_model.state_dict().values()):
                        if v.dtype.is_floating_point: e.mul_(0.99**5).add_(v, alpha=1-0.99**5)
                n_ema += 1
            tl += float(loss.detach().sum()); tc += int((logits.argmax(1)==yb).sum()); tn += len(yb)
        t_train = time.time() - te
        valid_model.train(False); correct = 0
        with torch.no_grad(), torch.autocast(**amp):
            for s in range(0, len(xv), bs):
                xb = xv[s:s+bs].contiguous(memory_format=torch.channels_last)
                correct += int(((valid_model(xb).float() + valid_model(xb.flip(-1)).float())/2).argmax(1).eq(yv[s:s+bs]).sum())
        h = dict(epoch=ep+1, lr=lr, train_loss=tl/tn, train_acc=tc/tn, test_acc_tta=correct/len(xv), train_s=round(t_train,1), total_s=round(time.time()-t0,1))
        hist.append(h); print(json.dumps(h), flush=True)
        (out/'history.json').write_text(json.dumps(dict(args=vars(a), device=str(dev), torch=torch.__version__, history=hist), indent=1))
        torch.save(dict(args=_same(vars(a)), epoch=ep+1, model=model.state_dict(), valid=valid_model.state_dict(), valid_training=valid_model.training,
                        vel=vel, hist=hist, step=step, n_ema=n_ema, g=g.get_state(), rng=torch.get_rng_state()), str(ck)+'.tmp')
        Path(str(ck)+'.tmp').replace(ck)  # a kill while saving leaves the previous checkpoint whole

def _same(args:dict)->dict: return {k: v for k, v in args.items() if k not in ('resume', 'stop_after', 'device')}  # what a resume must not change

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', help="CIFAR-10 folder or .tgz (through cifar_fastai's uint8 cache)")
    p.add_argument('--tensors', help="or a torch file with x (n,3,32,32) uint8, y (n,) and n_train: no cifar_fastai needed (the GPU machine)")
    p.add_argument('--out', required=True); p.add_argument('--epochs', type=int, default=10); p.add_argument('--bs', type=int, default=512)
    p.add_argument('--stop_after', type=int, default=0, help="stop after this many epochs of the --epochs schedule (0: all)")
    p.add_argument('--seed', type=int, default=0); p.add_argument('--subset', type=int, default=0, help="train on this many images (0: all)")
    p.add_argument('--precision', choices=('fp32','bf16','fp16'), default='bf16'); p.add_argument('--device')
    p.add_argument('--resume', action='store_true', help="continue from --out's checkpoint.pt (written after every epoch), with the same arguments")
    a = p.parse_args()
    if not (a.data or a.tensors): print("page_reference: error: pass --data or --tensors", file=sys.stderr); sys.exit(2)
    main(a)
