"""Issue 17, "if a run misses": changes to the course recipe that stay in its frame (fastai's Adam, `fit_one_cycle(24, lr_max,
pct_start=5/24)`, batch 512, pad/crop/flip/Cutout as a batch transform), each measured on the LR sweep's proxy (a 20 % subset,
the whole test set, a fixed `lr_max`) against the unchanged recipe at the same `lr_max` (`results/lr_proxy`), one after the other.

    python tools/variants.py /work/runs/variants --data ../shared/data/cifar10-jpeg.tgz --variants ref_loss,ls0.1,wd0.1,cutout_inside,ref_adam,wd0
    python tools/variants.py /work/runs/variants --copy_to results/variants   # the finished runs' small artefacts and variants.csv
    python tools/variants.py /work/runs/variants --data ../shared/data/cifar10-jpeg.tgz --variants wd0.1 --subset 1 --lr 0 --seed 1   # a full run: the default command with the change

`VARIANTS` names each change as a `Recipe` of `RECIPES['course']` with fields replaced. Each variant trains in
`--runs`/`run_name(…)` (wd0.1-lr0.004, wd0.1-lrfind-full-s1, …), as `lr_sweep.py`'s runs do (same subset draw for seed 42):
a folder holding `metrics.json` is done and skipped, one with a checkpoint goes on from it.
"""
import json, dataclasses
from functools import partial
from pathlib import Path
import pandas as pd
from fastcore.script import call_parse
from cifar_fastai.core import CifarError, run_cli, BS
from cifar_fastai.recipes import RECIPES, Adam, SoftmaxCrossEntropyFlat, LabelSmoothingCrossEntropyFlat  # ours first: its import of fastai silences torch's jit warning
from ladder import run_or_resume  # tools/ladder.py: skip a finished folder, resume a checkpoint
from lr_sweep import publish  # tools/lr_sweep.py: copy finished runs' small artefacts, write their CSV

_course = RECIPES['course']
VARIANTS = {  # name: (what it changes, the course recipe with it)
    'wd0': ("Adam without weight decay (the reference: plain PyTorch Adam, wd 0; fastai's default is a decoupled 0.01)",
            dataclasses.replace(_course, name='variant:wd0', opt_func=partial(Adam, wd=0.))),
    'wd0.1': ("Adam with a decoupled weight decay of 0.1 (10× fastai's default)",
              dataclasses.replace(_course, name='variant:wd0.1', opt_func=partial(Adam, wd=0.1))),
    'ref_adam': ("Adam as the reference's plain PyTorch Adam: no weight decay, β2 0.999, eps 1e-8 (fastai's: decoupled wd 0.01, β2 0.99, eps 1e-5; β1 still cycled by one-cycle)",
                 dataclasses.replace(_course, name='variant:ref_adam', opt_func=partial(Adam, sqr_mom=0.999, eps=1e-8, wd=0.))),
    'ref_loss': ("the reference's loss: a softmax, then the cross-entropy (its log's training loss never goes below that loss's floor of 1.461, 09b_recipes); little gradient from the images it gets most wrong",
                 dataclasses.replace(_course, name='variant:ref_loss', loss_func=SoftmaxCrossEntropyFlat)),
    'ls0.1': ("fastai's label smoothing at its default ε 0.1 (LabelSmoothingCrossEntropyFlat): the fastai way to keep a network from growing sure of its training images, as the reference's loss did",
              dataclasses.replace(_course, name='variant:ls0.1', loss_func=LabelSmoothingCrossEntropyFlat)),
    'cutout_inside': ("Cutout 8×8 always wholly inside the image (64 pixels hidden; the course's is centred anywhere and clipped: about 56)",
                      dataclasses.replace(_course, name='variant:cutout_inside', cutout_inside=True)),
}

def _variant(m:dict)->str: return m.get('recipe', '').removeprefix('variant:')  # a run's variant, from its metrics.json

def run_name(variant:str, lr:float, seed:int=42, subset:float=0.2)->str:
    "wd0.1-lr0.004 on the proxy; -lrfind where the range test picks `lr_max` (`lr` 0); -full on every training image; -s<seed> for a seed other than 42"
    return f"{variant}-" + (f"lr{lr:g}" if lr else 'lrfind') + ('-full' if subset in (None, 1) else '') + ('' if seed == 42 else f"-s{seed}")

def run_variants(data:str, runs:str, names:list, lr:float=4e-3, subset:float=0.2, seed:int=42, precision:str='auto', epochs:int=None, bs:int=BS)->list:
    "Train each variant of `names` on the proxy (see the module's doc); return the run folders"
    if bad := [n for n in names if n not in VARIANTS]: raise CifarError(f"unknown variant(s) {', '.join(bad)}; the variants: {', '.join(VARIANTS)}")
    if not names: raise CifarError(f"no variant named; the variants: {', '.join(VARIANTS)}")
    dirs = []
    for n in names:
        d = Path(runs)/run_name(n, lr, seed, subset); dirs.append(d)
        imgs = 'all the training images' if subset in (None, 1) else f"{subset:g} training images" if subset > 1 else f"{subset:g} of the training images"
        run_or_resume(d, 'variants', f" ({VARIANTS[n][0]}), {VARIANTS[n][1].epochs if epochs is None else epochs} epochs on {imgs}, "
                      + (f"lr_max {lr:g}" if lr else "lr_max from the LR range test"),
                      data=data, recipe=VARIANTS[n][1], subset=None if subset == 1 else subset, seed=seed, lr_max=lr or None, precision=precision, epochs=epochs, bs=bs, bar=False)
    return dirs

def variant_table(folder:str)->pd.DataFrame:
    "One row per finished variant run in `folder`"
    rows = []
    for f in sorted(Path(folder).glob('*/metrics.json')):
        m = json.loads(f.read_text()); v = _variant(m)
        if v not in VARIANTS: continue
        rows.append(dict(run=f.parent.name, variant=v, change=VARIANTS[v][0], lr_max=m['lr_max'], lr_max_from=m['lr_max_from'], seed=m['args']['seed'], n_train=m['n_train'],
                         test_accuracy=m['test_accuracy'], test_accuracy_flip_tta=m.get('test_accuracy_flip_tta'), train_accuracy=m.get('train_accuracy'),
                         precision=m['precision'], cpu=m['cpu']['model'], per_epoch_s=m['seconds']['per_epoch'], resumed_after=m.get('resumed_after')))
    if not rows: raise CifarError(f"no finished variant run in {folder}")
    return pd.DataFrame(rows)

def copy_runs(runs:str, dest:str)->pd.DataFrame:
    "Copy the finished variant runs' small artefacts from `runs` to `dest`, write `dest/variants.csv` and return it"
    return publish(runs, dest, lambda m: _variant(m) in VARIANTS, variant_table, 'variants.csv')

@call_parse
def main(runs:str, # folder of the variants' run folders (outside the repository: they hold checkpoints and models)
         data:str=None, # CIFAR-10 folder or .tgz, as for `train`
         variants:str='ref_loss,ls0.1,wd0.1,cutout_inside,ref_adam,wd0', # comma-separated names of `VARIANTS`, run in this order
         lr:float=4e-3, # `lr_max` of every run (the proxy sweep's best, results/lr_proxy); 0: the LR range test picks it, as in the default command
         subset:float=0.2, # fraction (<=1) or number (>1) of training images; 1: all of them (a full run, to confirm a proxy's finding)
         seed:int=42, # seed of every run (weights, augmentation, the subset)
         precision:str='auto', # as for `train`
         epochs:int=None, # epochs of each run; None: the recipe's 24 (fewer: not the proxy of results/lr_proxy, for trying the tool)
         bs:int=BS, # batch size
         copy_to:str=None, # instead of training: copy the finished runs' artefacts here and write its variants.csv
        ):
    "Run changes of the course recipe on the LR sweep's proxy, or publish the finished runs"
    def go():
        if copy_to: print(copy_runs(runs, copy_to).to_string(index=False)); return
        if lr < 0: raise CifarError(f"--lr must be positive, or 0 for the LR range test, got {lr}")
        run_variants(data, runs, [n.strip() for n in variants.split(',') if n.strip()], lr, subset, seed, precision, epochs, bs)
    run_cli(go)
