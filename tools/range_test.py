"""One LR range test of the default `python -m cifar_fastai.train` configuration, and nothing else.

It runs `train`'s own phases up to the range test (`_start`, `_learner`, `_lr_find`: same data, augmentation, seed,
precision and pick rule as a training run), writes `lr_find.csv`, `lr_find.png`, `train.log` and `range_test.json`
(seed, pick, rule, seconds, precision, CPU, date) into `--out`, and stops. `nbs/09a_lr_find.ipynb` compares the rules
on the curves this records (`results/lr_find_spread/curves.csv`).

    python tools/range_test.py --data ../shared/data/cifar10-jpeg.tgz --out /work/runs/rt-s1 --seed 1
"""
import json, time, inspect
from fastcore.script import call_parse
from cifar_fastai.core import run_cli, BS
from cifar_fastai.train import train, TrainRun, _start, _learner, _lr_find

def range_test(data:str=None, # CIFAR-10 folder or .tgz, as for `train`
               out:str=None, # run folder for the curve; as for `train`
               seed:int=42, # seed for the weights and the augmentation
               precision:str='auto', # as for `train`
               lr_find_iters:int=100, # batches of the range test
               bs:int=BS, # batch size, as for `train`
              )->dict:
    "Run the LR range test of `train(data, seed=seed, …)` and return what `range_test.json` records"
    args = {k:v.default for k,v in inspect.signature(train).parameters.items() if k!='cbs'}
    args.update(data=data, out=out, seed=seed, precision=precision, lr_find_iters=lr_find_iters, bs=bs, bar=False)
    r = TrainRun(args, time.time())  # the run state `train` itself starts from
    _lr_find(_learner(_start(r)))
    res = dict(seed=seed, lr_max=r.lr_max, how=r.how, seconds=round(r.t_find,1), precision=r.learn.precision,
               cpu=r.cpu['model'], n=len(r.learn.recorder.lrs), date=time.strftime('%Y-%m-%d'))
    (r.out/'range_test.json').write_text(json.dumps(res, indent=1))
    return res

@call_parse
def main(data:str=None, # CIFAR-10 folder or .tgz
         out:str=None, # run folder (a fresh one, as `train` makes)
         seed:int=42, # seed
         precision:str='auto', # 'auto', 'fp32', 'bf16', 'fp16'
         lr_find_iters:int=100, # batches of the range test
         bs:int=BS, # batch size
        ):
    "One LR range test of the default training configuration: its curve and pick in `out`"
    run_cli(range_test, data=data, out=out, seed=seed, precision=precision, lr_find_iters=lr_find_iters, bs=bs)
