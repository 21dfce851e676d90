"""Issue 17, step 4: the default command, LR range test included, once per seed, one run after the other; then one CSV
of what each reached and the spread over seeds (mean ± standard deviation, minimum, maximum, each run's `lr_max`).

    python tools/seeds.py /work/runs/seeds --data ../shared/data/cifar10-jpeg.tgz --seeds 1,2,3
    python tools/seeds.py /work/runs/seeds --copy_to results/default      # the finished runs' small artefacts and seeds.csv

Each seed trains in `RUNS`/default-s<seed> exactly as `python -m cifar_fastai.train --data … --seed <seed>` would (with
`--reference`, if given, drawn on its curves). A folder holding `metrics.json` is done and skipped; one with a checkpoint
goes on from it, so the command can be stopped and started again (`tools/ladder.py`'s `run_or_resume`). `--copy_to`
copies everything a finished run wrote except `model.pkl` and checkpoints into `copy_to/<run>/`, and writes
`copy_to/seeds.csv` from every published run of the default command: those in `copy_to/`, earlier ones included, and those
beside it (`results/run2-cutout8-lrdiv3`, trained with seed 42 before this tool existed). A run counts as the default command
only if every training setting is `train`'s default (`is_default`): run 1 (Cutout 16, /10) and the proxies do not.
"""
import json, shutil, inspect, math
from pathlib import Path
import pandas as pd
from fastcore.script import call_parse
from fastcore.basics import ifnone
from cifar_fastai.core import CifarError, run_cli, atomic_write
from cifar_fastai.recipes import RECIPES
from cifar_fastai.train import train
from ladder import run_or_resume
from figures import seed_spread  # the same mean ± std, min, max and count over 90 % that README's table shows

KEEP_OUT = ('model.pkl', 'checkpoint.pth')  # large, and rebuilt by a run: never in the repository

def run_name(seed:int)->str: return f"default-s{seed}"

def seed_runs(data:str, runs:str, seeds:list, precision:str='auto', reference:str=None)->list:
    "Train the default command once per seed of `seeds` (see the module's doc); return the run folders"
    dirs = [Path(runs)/run_name(s) for s in seeds]
    for s, d in zip(seeds, dirs): run_or_resume(d, 'seeds', f", the default command with seed {s}", data=data, seed=s, precision=precision, reference=reference, bar=False)
    return dirs

def is_default(m:dict)->bool:
    "Whether a run's `metrics.json` (`m`) comes from the default command: the course recipe with `train`'s defaults (24 epochs, bs 512, pct_start 5/24, Cutout 8, the range test's length and /3), its LR from the range test, the whole training set"
    a, rc = m['args'], RECIPES['course']
    dflt = {k: v.default for k, v in inspect.signature(train).parameters.items()}
    same = lambda k, v: math.isclose(v, getattr(rc, k)) if isinstance(v, float) else v == getattr(rc, k)
    return (m.get('recipe', 'course') == 'course' and str(m.get('lr_max_from')).startswith('lr_find') and not a.get('subset')
            and all(same(k, ifnone(a.get(k), getattr(rc, k))) for k in ('epochs', 'pct_start', 'cutout'))  # None: the recipe's; older runs wrote the value
            and all(a.get(k, dflt[k]) == dflt[k] for k in ('bs', 'lr_find_iters', 'lr_div', 'pil')))

def seed_table(*folders)->pd.DataFrame:
    "One row per run folder of `folders` whose `metrics.json` comes from the default command (`is_default`), by seed: `seeds.csv`'s columns; `run` is the folder's path from the first folder's parent"
    rows, root = [], Path(folders[0]).parent
    for f in sorted(f for d in folders for f in Path(d).glob('*/metrics.json')):
        m = json.loads(f.read_text())
        if not is_default(m): continue
        rows.append(dict(run=f.parent.relative_to(root).as_posix(), seed=m['args']['seed'], lr_max=m['lr_max'], lr_max_from=m['lr_max_from'], test_accuracy=m['test_accuracy'], epochs=m['epochs'],
                         test_accuracy_flip_tta=m.get('test_accuracy_flip_tta'), precision=m['precision'], cpu=m['cpu']['model'],
                         per_epoch_s=m['seconds']['per_epoch'], resumed_after=m.get('resumed_after')))
    if not rows: raise CifarError(f"no finished run of the default command in {', '.join(map(str, folders))}")
    return pd.DataFrame(rows).sort_values('seed')

def copy_runs(runs:str, dest:str)->pd.DataFrame:
    "Copy the finished default-command runs' artefacts (all but `KEEP_OUT`) from `runs` to `dest`, write `dest/seeds.csv` (from `dest` and its siblings) and return it"
    for f in Path(runs).glob('*/metrics.json'):
        if not is_default(json.loads(f.read_text())): continue  # a proxy or other run: not published with the seeds
        shutil.copytree(f.parent, Path(dest)/f.parent.name, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*KEEP_OUT))
    df = seed_table(dest, Path(dest).parent)
    Path(dest).mkdir(parents=True, exist_ok=True)  # none of `runs` copied, but a run beside `dest` counts
    atomic_write(Path(dest)/'seeds.csv', lambda t: df.to_csv(t, index=False))
    return df

@call_parse
def main(runs:str, # folder of the runs' folders (outside the repository: they hold checkpoints and models)
         data:str=None, # CIFAR-10 folder or .tgz, as for `train`
         seeds:str='1,2,3', # comma-separated seeds, run in this order
         precision:str='auto', # as for `train`
         reference:str=None, # a reference run's per-epoch CSV, as for `train`
         copy_to:str=None, # instead of training: copy the finished runs' artefacts here and write its seeds.csv
        ):
    "Run the default command over seeds, or publish its finished runs"
    def go():
        if copy_to:
            df = copy_runs(runs, copy_to); print(df.to_string(index=False))
            s = seed_spread(df.to_dict('records')); std = f" ± {s['std']:.2f}" if s['std'] is not None else ''  # one run has no spread
            print(f"test accuracy over {s['n']} run{'s'*(s['n'] > 1)}: {s['mean']:.2f}{std} % (min {s['min']:.2f}, max {s['max']:.2f}; {s['over_90']} over 90 %)")
            return
        try: vals = [int(v) for v in seeds.split(',') if v.strip()]
        except ValueError: raise CifarError(f"--seeds must be comma-separated integers, got {seeds!r}") from None
        if not vals or len(set(vals)) != len(vals): raise CifarError(f"--seeds must name distinct seeds, got {seeds!r}")
        seed_runs(data, runs, vals, precision, reference)
    run_cli(go)
