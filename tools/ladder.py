"""Page's ladder on a proxy (issue 18, item 3): every step of `LADDER` (nbs/09b_recipes.ipynb) trained for a few epochs on a
subset of the training images (the whole test set), one after the other, each in its own run folder of `--runs`; then one
CSV of what each step reached, which 09b draws.

    python tools/ladder.py /work/runs/ladder --data ../shared/data/cifar10-jpeg.tgz --epochs 3 --subset 0.2
    python tools/ladder.py /work/runs/ladder --collect_to results/ladder/ladder.csv   # the table of the finished steps

A step whose folder holds `metrics.json` is done and skipped; one with a checkpoint goes on from it (`train(resume=…)`),
so the command can be stopped and started again. On a proxy each step runs for `--epochs` (its schedule's breakpoints are
fractions of the epochs, so they scale) and an EMA keeps Page's rule rather than his constant: he chose the decay 0.99 "so
that averaging takes place over a timescale of roughly the last epoch" (`bag_of_tricks.ipynb`), at 97 steps per epoch; a
proxy epoch of 19 steps gets the decay that averages over the same share of an epoch (`proxy_decay`).
"""
import json, time, shutil, dataclasses
from pathlib import Path
import pandas as pd
from fastcore.script import call_parse
from cifar_fastai.core import CifarError, run_cli, BS, atomic_write
from cifar_fastai.source import cifar_source, _subset_idx
from cifar_fastai.recipes import LADDER
from cifar_fastai.train import train

def proxy_decay(decay:float, # the recipe's EMA decay per step
                every:int, # steps between EMA updates
                n_iter:int, # steps per epoch of the proxy
                full_iter:int=97, # steps per epoch the decay was chosen for (50,000 images in batches of 512)
               )->float:
    "The decay per step whose average spans the same share of an epoch at `n_iter` steps per epoch as `decay` at `full_iter`"
    span = every/(1-decay**every)/full_iter  # epochs the average spans: about 1.05 for Page's 0.99, every 5
    return (1 - every/(span*n_iter))**(1/every)

def run_or_resume(d:Path, # the run folder
                  tag:str, # the tool's name, first on every line it prints
                  what:str, # what a fresh run is, for its first line
                  **kw): # passed to `train`
    "Train into `d`: nothing if it holds `metrics.json` (done), on from its checkpoint if it holds one, else afresh"
    if (d/'metrics.json').exists(): print(f"{tag}: {d.name} done", flush=True); return
    if (d/'checkpoint.pth').exists(): print(f"{tag}: {d.name} resumed", flush=True); train(resume=str(d), **kw); return
    shutil.rmtree(d, ignore_errors=True)
    try: d.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e: raise CifarError(f"cannot make the runs folder {d.parent}: {e.strerror or e}") from None  # e.g. a file of that name
    print(f"{tag}: {d.name}{what}", flush=True); train(out=str(d), **kw)

def _steps(names:str=None)->list:
    "The `Step`s of `LADDER` that `names` (comma-separated, e.g. 'baseline,ema') names, in the ladder's order; None: all"
    known = {s.name: s for s in LADDER}
    if not names: return list(known.values())
    want = [n.strip() for n in names.split(',') if n.strip()]
    if bad := [n for n in want if n not in known]: raise CifarError(f"unknown ladder step(s) {', '.join(bad)}; the steps: {', '.join(known)}")
    return [s for n,s in known.items() if n in want]

def run_ladder(data:str, runs:str, epochs:int=3, subset:float=0.2, seed:int=0, bs:int=BS, steps:str=None, precision:str='auto'):
    "Train each step (see the module's doc); return the run folders"
    runs, todo = Path(runs), _steps(steps)
    n = len(list((cifar_source(data)/'train').glob('*/*')))  # the training images `train` will find (it checks them itself)
    n_iter = len(_subset_idx(n, subset, seed))//bs  # the training loader drops the last partial batch
    if n_iter < 1: raise CifarError(f"subset {subset} of {n} images is less than one batch of {bs}")
    dirs = []
    for s in todo:
        d = runs/s.name; dirs.append(d)
        rc = s.recipe if not s.recipe.ema else dataclasses.replace(s.recipe, ema=s.recipe.ema | dict(decay=proxy_decay(s.recipe.ema['decay'], s.recipe.ema['every'], n_iter)))
        run_or_resume(d, 'ladder', f" ({s.change}), {epochs} epochs on {subset} of the training images",
                      data=data, recipe=rc, epochs=epochs, subset=subset, seed=seed, bs=bs, precision=precision, bar=False)
    return dirs

def collect(runs:str)->pd.DataFrame:
    "One row per finished step of `runs`, in the ladder's order: Page's figures beside the proxy's"
    rows = []
    for s in LADDER:
        f = Path(runs)/s.name/'metrics.json'
        if not f.exists(): continue
        m = json.loads(f.read_text()); pct = lambda k: round(100*m[k], 2)
        rows.append(dict(step=s.name, change=s.change, page_epochs=s.page_epochs, page_acc=s.page_acc,
                         epochs=m['epochs'], n_train=m['n_train'], seed=m['args']['seed'], test_acc=pct('test_accuracy_plain'),
                         test_acc_tta=pct('test_accuracy_flip_tta'), acc=pct('test_accuracy'),  # the step's own: TTA's from the `tta` step on
                         s_per_epoch=m['seconds']['per_epoch'], precision=m['precision'], cpu=m['cpu']['model'], date=m.get('date', time.strftime('%Y-%m-%d', time.gmtime(f.stat().st_mtime)))))
    if not rows: raise CifarError(f"no finished ladder step in {runs}")
    return pd.DataFrame(rows)

@call_parse
def main(runs:str, # folder of the steps' run folders (outside the repository: they hold checkpoints and models)
         data:str=None, # CIFAR-10 folder or .tgz, as for `train`
         epochs:int=3, # epochs per step
         subset:float=0.2, # fraction (<=1) or number (>1) of training images
         seed:int=0, # seed of every step
         bs:int=BS, # batch size
         steps:str=None, # comma-separated steps to run (e.g. 'baseline,ema'); None: all, in order
         precision:str='auto', # as for `train`
         collect_to:str=None, # instead of training: write the finished steps' table to this CSV
        ):
    "Run Page's ladder on a proxy, or collect its table"
    def go():
        if collect_to:
            df = collect(runs); Path(collect_to).parent.mkdir(parents=True, exist_ok=True)
            atomic_write(Path(collect_to), lambda t: df.to_csv(t, index=False)); print(df.to_string(index=False))
        else: run_ladder(data, runs, epochs, subset, seed, bs, steps, precision)
    run_cli(go)
