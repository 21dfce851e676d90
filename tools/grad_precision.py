"""How far a training step's gradients in bf16 autocast are from fp32's (issue 18: where `fast`'s missing points go).

One batch of training images through a trained model (`model.pkl` of `train`, in training mode: BatchNorm on the batch's
statistics), its loss and gradients in fp32, then again in bf16 autocast, as `train` runs it and with one part at a
time moved to fp32 or back to bf16. Per variant: the loss, and the gradients' error relative to fp32's, ‖g − g₃₂‖/‖g₃₂‖
over all parameters, and its median over the weights and over the biases. The backward pass runs outside the autocast,
as fastai's `MixedPrecision` runs it.

    python tools/grad_precision.py /work/runs/fast-s0/model.pkl --data ../shared/data/cifar10-jpeg.tgz --out results/recipes/grad_precision.csv

Variants: `bf16` (the code as it is: the whitening prep's filters and convolution in fp32, its output in bf16),
`bf16, prep in bf16` (the prep's merged filters rounded to bf16, as before 2026-12-01), `bf16, BatchNorm in fp32`,
`bf16, loss in fp32`. A model without a whitening prep skips the prep's variant.
"""
import copy
from pathlib import Path
import numpy as np, pandas as pd, torch, torch.nn.functional as F
from torch import nn
from fastcore.script import call_parse
from cifar_fastai.core import CifarError, run_cli, atomic_write
from cifar_fastai.data import cifar_dls
from cifar_fastai.predict import load_cifar_learner
from cifar_fastai.recipes import WhitenConv, GhostBatchNorm

def _prep_bf16(self, x): return F.conv2d(x, (self.weight.flatten(1) @ self.w.flatten(1)).view(-1, *self.w.shape[1:]), padding=1)  # autocast takes it to bf16

def _fp32(f):
    "`f` run in fp32 inside an autocast"
    def g(self, x):
        with torch.autocast(x.device.type, enabled=False): return f(self, x.float())
    return g

def grads(model:nn.Module, loss_func, xb, yb, amp:bool=True, loss32:bool=False)->tuple:
    "The loss and a dict of gradients of one step of a copy of `model` on `(xb, yb)`, in bf16 autocast if `amp`"
    m = copy.deepcopy(model).train()
    with torch.autocast(xb.device.type, dtype=torch.bfloat16, enabled=amp):
        out = m(xb)
        loss = loss_func(out.float() if loss32 else out, yb)
    loss.backward()  # outside the autocast, as `MixedPrecision` does
    return float(loss.detach()), {n: p.grad.detach().float() for n,p in m.named_parameters() if p.grad is not None}

def compare(model, loss_func, xb, yb)->pd.DataFrame:
    "One row per variant: its loss and gradient errors against fp32"
    patches = {'bf16': {}, 'bf16, prep in bf16': {WhitenConv: _prep_bf16},
               'bf16, BatchNorm in fp32': {GhostBatchNorm: _fp32(GhostBatchNorm.forward), nn.BatchNorm2d: _fp32(nn.BatchNorm2d.forward)},
               'bf16, loss in fp32': {}}
    if not any(isinstance(m, WhitenConv) for m in model.modules()): del patches['bf16, prep in bf16']
    l32, g32 = grads(model, loss_func, xb, yb, amp=False)
    ref = torch.cat([g.flatten() for g in g32.values()])
    rows = [dict(variant='fp32', loss=l32, grad_err=0., weights_median=0., biases_median=0.)]
    for name, p in patches.items():
        old = {c: c.forward for c in p}
        try:
            for c,f in p.items(): c.forward = f
            l, g = grads(model, loss_func, xb, yb, loss32=name.endswith('loss in fp32'))
        finally:
            for c,f in old.items(): c.forward = f
        rel = {n: float((g[n]-g32[n]).norm()/g32[n].norm()) for n in g32}
        rows.append(dict(variant=name, loss=l, grad_err=float((torch.cat([g[n].flatten() for n in g32])-ref).norm()/ref.norm()),
                         weights_median=np.median([v for n,v in rel.items() if not n.endswith('bias')]),
                         biases_median=np.median([v for n,v in rel.items() if n.endswith('bias')] or [np.nan])))
    return pd.DataFrame(rows)

@call_parse
def main(model:str, # a `model.pkl` written by `train`
         data:str=None, # CIFAR-10 folder or .tgz, as for `train`: the batch's images
         bs:int=512, # images in the batch
         seed:int=0, # which images and augmentation
         out:str=None, # write the table to this CSV too
        ):
    "Print (and save) the gradient error of bf16 autocast and its variants against fp32 on one training batch"
    def go():
        learn = load_cifar_learner(model, 'fp32'); torch.manual_seed(seed)
        dls = cifar_dls(data, bs=bs, subset=bs, seed=seed)
        xb, yb = dls.one_batch()
        df = compare(learn.model.float(), learn.loss_func, xb.float(), yb)
        if out: Path(out).parent.mkdir(parents=True, exist_ok=True); atomic_write(Path(out), lambda t: df.to_csv(t, index=False, float_format='%.5f'))
        print(df.to_string(index=False, float_format=lambda v: f'{v:.4f}'))
    run_cli(go)
