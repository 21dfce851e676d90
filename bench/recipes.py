"""Cost of a training step per recipe: course (Adam, one-cycle), page (Nesterov SGD, coupled L2) and fast (whitening, ghost BatchNorm,
CELU, label smoothing, EMA), side by side, in one precision.

    python bench/recipes.py --data ../shared/data/cifar10-jpeg.tgz                    # in the precision 'auto' picks here
    python bench/recipes.py --data ../shared/data/cifar10-jpeg.tgz --precisions fp32,bf16

Issue 18 asks that page's and fast's step cost within 10 % of the course's (the same network size). Each recipe is built as `train`
builds it (`recipe_dls`, `recipe_learner`: fast's whitening is computed from the same training images) and fitted with its own
schedule and callbacks (`fit_recipe`: fast's EMA included) for one warm-up step and `--steps` timed ones; the recipes alternate round
by round, and the ratios are of medians. Building a recipe (fast's whitening: a pass over 10,000 images) is not timed."""
from common import parser, header, round_line, report_recipes
from fastai.vision.all import ProgressCallback, noop, set_seed
from cifar_fastai.learner import resolve_precision
from cifar_fastai.recipes import RECIPES, recipe_dls, recipe_learner
from train import Clock, rate

def recipe_run(learn, recipe):
    "Images/s of `--steps` training steps (after one untimed) of `recipe`'s fit"
    learn.remove_cb(ProgressCallback); learn.logger = noop
    clock = Clock()
    learn.fit_recipe(recipe, n_epoch=1, cbs=clock, **({} if RECIPES[recipe].lr_max else dict(lr_max=1e-3)))  # the course's LR comes from a range test
    return rate(clock.ts, learn.dls.bs)

def main():
    p = parser(__doc__, rounds=3)
    p.add_argument('--steps', type=int, default=4, help='timed training steps per measurement (plus one warm-up step)')
    p.add_argument('--recipes', default='course,page,fast', help='comma-separated; the first is the one the others are compared with')
    a = p.parse_args(); header(a)
    rs = a.recipes.split(',')
    for r in rs:
        if r not in RECIPES: raise SystemExit(f"unknown recipe {r!r}: use {', '.join(RECIPES)}")
    ps = a.precisions.split(',') if a.precisions else [resolve_precision('auto', a.device)]  # what `train` uses here
    res = {f'{r}_{p}':[] for p in ps for r in rs}
    for i in range(a.rounds):
        for p in ps:
            for r in (rs if i%2==0 else rs[::-1]):  # alternate which goes first
                set_seed(0)  # the same batches and initial weights in every round
                dls = recipe_dls(a.data, r, bs=a.bs, subset=(a.steps+1)*a.bs, seed=0, device=a.device)
                res[f'{r}_{p}'].append(recipe_run(recipe_learner(dls, r, precision=p), r))
        round_line(i, res)
    report_recipes(res, rs, ps, a.rounds, a.json)

if __name__=='__main__': main()
