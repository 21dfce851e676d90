"""Issue 17, step 2: the default 24-epoch one-cycle schedule at fixed values of `lr_max` on a proxy (a fraction of the
training set, the whole test set), one run per value, one after the other; then one CSV of what each reached, which
`nbs/09a_lr_find.ipynb` draws against the LR rules' picks.

    python tools/lr_sweep.py /work/runs/lr_sweep --data ../shared/data/cifar10-jpeg.tgz --lrs 1e-3,2e-3,4e-3,8e-3,1.6e-2
    python tools/lr_sweep.py /work/runs/lr_sweep --copy_to results/lr_proxy     # the finished runs' small artefacts and proxy.csv

Each value trains in `--runs`/proxy-lr<value> (proxy-lr<value>-s<seed> for a seed other than 42) as `python -m cifar_fastai.train --data … --subset 0.2 --lr_max <value>`
would (seed 42: the same 10,000 images for every value). A folder holding `metrics.json` is done and skipped; one with a
checkpoint goes on from it (`train(resume=…)`), so the command can be stopped and started again. `--copy_to` copies each
finished run's `metrics.json`, `history.csv`, `train.log` and `curves.png` (never `model.pkl`) into `copy_to/<run>/`, and
writes `copy_to/proxy.csv` from every run there, earlier ones included.
"""
import json, shutil
from pathlib import Path
import pandas as pd
from fastcore.script import call_parse
from cifar_fastai.core import CifarError, run_cli, atomic_write
from ladder import run_or_resume  # tools/ladder.py: skip a finished folder, resume a checkpoint

ARTEFACTS = ('metrics.json', 'history.csv', 'train.log', 'curves.png')

def run_name(lr:float, seed:int=42)->str:
    "0.004 → proxy-lr0.004, with seed 43 proxy-lr0.004-s43 (a repeat, to see the proxy's noise); 3e-3 was named proxy-lr3e-3 by hand, before this tool"
    return f"proxy-lr{lr:g}" + ('' if seed == 42 else f"-s{seed}")

def sweep(data:str, runs:str, lrs:list, subset:float=0.2, seed:int=42, precision:str='auto')->list:
    "Train each `lr_max` of `lrs` (see the module's doc); return the run folders"
    dirs = []
    for lr in lrs:
        d = Path(runs)/run_name(lr, seed); dirs.append(d)
        run_or_resume(d, 'lr_sweep', f", 24 epochs on {subset} of the training images",
                      data=data, subset=subset, seed=seed, lr_max=lr, precision=precision, bar=False)
    return dirs

def proxy_table(folder:str)->pd.DataFrame:
    "One row per run folder of `folder` holding a `metrics.json` with a given `lr_max`, by `lr_max`: `proxy.csv`'s columns"
    rows = []
    for f in sorted(Path(folder).glob('*/metrics.json')):
        m = json.loads(f.read_text())
        if m.get('lr_max_from') != 'given': continue
        a = m['args']
        rows.append(dict(run=f.parent.name, lr_max=m['lr_max'], test_accuracy=m['test_accuracy'], test_accuracy_flip_tta=m.get('test_accuracy_flip_tta'),
                         best_test_accuracy=m['best_test_accuracy'], n_train=m['n_train'], epochs=m['epochs'], seed=a['seed'], precision=m['precision'],
                         cpu=m['cpu']['model'], per_epoch_s=m['seconds']['per_epoch'], resumed_after=m.get('resumed_after'),
                         command=f"python -m cifar_fastai.train --data ../shared/data/cifar10-jpeg.tgz --subset {a['subset']:g} --lr_max {m['lr_max']:g}"))
    if not rows: raise CifarError(f"no finished proxy run in {folder}")
    return pd.DataFrame(rows).sort_values(['lr_max', 'seed'])

def publish(runs:str, # folder of run folders
            dest:str, # where the copies go, one folder per run, and the CSV
            keep, # `keep(metrics)`: is this finished run (its metrics.json as a dict) one to publish?
            table, # `table(dest)`: the CSV's DataFrame, from what `dest` holds (earlier copies included)
            csv:str, # the CSV's name in `dest`
           )->pd.DataFrame:
    "Copy the small artefacts (`ARTEFACTS`, never the model) of each finished run of `runs` that `keep` accepts to `dest/<run>/`; write and return the CSV"
    if not Path(runs).is_dir(): raise CifarError(f"{runs} is not a folder of runs")
    for f in Path(runs).glob('*/metrics.json'):
        if not keep(json.loads(f.read_text())): continue
        (d := Path(dest)/f.parent.name).mkdir(parents=True, exist_ok=True)
        for a in ARTEFACTS:
            if (f.parent/a).exists(): shutil.copy2(f.parent/a, d/a)
    df = table(dest)
    atomic_write(Path(dest)/csv, lambda t: df.to_csv(t, index=False))
    return df

def copy_runs(runs:str, dest:str)->pd.DataFrame:
    "Copy the finished runs' small artefacts from `runs` to `dest`, write `dest/proxy.csv` and return it"
    # a run with its LR from a range test is no point of the sweep, nor one of another recipe (tools/variants.py's)
    return publish(runs, dest, lambda m: m.get('lr_max_from') == 'given' and m.get('recipe', 'course') == 'course', proxy_table, 'proxy.csv')

@call_parse
def main(runs:str, # folder of the sweep's run folders (outside the repository: they hold checkpoints and models)
         data:str=None, # CIFAR-10 folder or .tgz, as for `train`
         lrs:str='1e-3,2e-3,4e-3,8e-3,1.6e-2', # comma-separated values of `lr_max`, run in this order
         subset:float=0.2, # fraction (<=1) or number (>1) of training images
         seed:int=42, # seed of every run (weights, augmentation, the subset)
         precision:str='auto', # as for `train`
         copy_to:str=None, # instead of training: copy the finished runs' artefacts here and write its proxy.csv
        ):
    "Run the LR sweep on a proxy, or publish its finished runs"
    def go():
        if copy_to: print(copy_runs(runs, copy_to).to_string(index=False)); return
        try: vals = [float(v) for v in lrs.split(',') if v.strip()]
        except ValueError: raise CifarError(f"--lrs must be comma-separated numbers, got {lrs!r}") from None
        if not vals or min(vals) <= 0: raise CifarError(f"--lrs must name positive LRs, got {lrs!r}")
        sweep(data, runs, vals, subset, seed, precision)
    run_cli(go)
