"Recipes (`train(recipe=…)`, `--recipe`): the course's numerics unchanged; page and fast are Nesterov SGD with coupled L2 on the groups they name, follow their LR schedule, evaluate and export the EMA, and resume bit for bit."
import json, warnings, pytest, torch
import numpy as np, pandas as pd
from pathlib import Path
from fastai.callback.core import Callback
from conftest import cli

pytestmark = pytest.mark.filterwarnings('ignore')  # fastai's pickle and torch.jit warnings: not what these tests check
BS = 16  # 5 batches of the 80 training images of `syn` per epoch

class Hyp(Callback):
    "Each training step's (lr, mom, wd) of every parameter group, as the optimizer holds them when the step is taken"
    order = 60  # after the ParamScheduler (its `before_batch` sets them)
    def before_fit(self): self.h = []
    def before_batch(self):
        if self.training: self.h.append([(h['lr'], h['mom'], h['wd']) for h in self.opt.hypers])

class EvalSpy(Callback):
    "What the model holds in validation (after `EMA` swapped the average in) and what it trains with, at every epoch"
    order = 20  # after `EMA` (11): its swaps have happened
    def before_fit(self): self.seen = []
    def before_validate(self):
        from cifar_fastai.recipes import EMA
        self.ema = next(cb for cb in self.learn.cbs if isinstance(cb, EMA))
        self.a = {k: v.clone() for k,v in self.model.state_dict().items()}  # evaluated
        self.b = {k: v.clone() for k,v in self.ema.avg.module.state_dict().items()}  # the training weights, parked in the average's place
    def after_validate(self):
        now, avg = self.model.state_dict(), self.ema.avg.module.state_dict()
        self.seen.append((all(torch.equal(self.a[k], avg[k]) for k in now), all(torch.equal(self.b[k], now[k]) for k in now),
                          any(not torch.equal(self.a[k], self.b[k]) for k in now if now[k].is_floating_point())))

class CtrlCInEpoch2(Callback):
    def after_batch(self):
        if self.epoch==1: raise KeyboardInterrupt

def weights(fn):
    from fastai.learner import load_learner
    return load_learner(fn).model.state_dict()

def same(a, b): return a.keys()==b.keys() and all(torch.equal(a[k], b[k]) for k in a)

def hist(run): return pd.read_csv(Path(run)/'history.csv').drop(columns='time')

def run(syn, out, recipe, **kw):
    from cifar_fastai.train import train
    return train(syn, recipe=recipe, epochs=2, bs=BS, seed=0, out=out, bar=False, precision='fp32', **kw)

@pytest.fixture(scope='module')
def fast(syn, tmp_path_factory):
    "An uninterrupted 2-epoch fast run, watched by `Hyp` and `EvalSpy`"
    hyp, spy = Hyp(), EvalSpy()
    learn, m = run(syn, tmp_path_factory.mktemp('fast')/'run', 'fast', cbs=[hyp, spy])
    return learn, m, hyp, spy

def test_course_recipe_is_the_hand_written_course_fit(syn, tmp_path):
    "train(recipe='course') = `cifar_learner` + `fit_one_cycle(epochs, lr, pct_start=5/24)` with the same seed: same history and weights"
    from fastai.vision.all import set_seed
    from cifar_fastai.train import train
    from cifar_fastai.data import cifar_dls
    from cifar_fastai.learner import cifar_learner
    learn, m = train(syn, recipe='course', epochs=2, bs=BS, lr_max=2e-3, seed=0, out=tmp_path/'train', bar=False, precision='fp32')
    set_seed(0)
    ref = cifar_learner(cifar_dls(syn, bs=BS, seed=0, device='cpu'), precision='fp32')
    ref.recorder.train_metrics = True
    with ref.no_bar(), ref.no_logging(): ref.fit_one_cycle(2, 2e-3, pct_start=5/24)
    assert m['recipe'] == 'course' and m['lr_max_from'] == 'given' and m['pct_start'] == pytest.approx(5/24)
    np.testing.assert_allclose(hist(tmp_path/'train').values, [[i, *map(float, v)] for i,v in enumerate(ref.recorder.values)], rtol=1e-6)
    assert same(weights(tmp_path/'train/model.pkl'), ref.model.state_dict())  # model.pkl: the same weights, bit for bit

@pytest.mark.parametrize('recipe', ['page', 'fast'])
def test_optimizer_is_nesterov_sgd_with_coupled_l2(syn, recipe):
    "Two steps of the recipe's optimizer = torch's SGD(nesterov=True, momentum=0.9, weight_decay=wd) with each group's lr and wd, BN and biases included"
    from fastai.vision.all import set_seed
    from cifar_fastai.recipes import recipe_dls, recipe_learner, get_recipe
    r = get_recipe(recipe); set_seed(0)
    learn = recipe_learner(recipe_dls(syn, recipe, bs=BS, seed=0, device='cpu'), recipe, precision='fp32'); learn.create_opt()
    groups = [(64., 5e-4/64), (1., 5e-4)] if recipe=='fast' else [(1., 5e-4)]  # (LR ×, wd): the biases (BN's too), then the weights
    learn.opt.set_hyper('lr', [0.1*k for k,_ in groups])
    assert [h['wd'] for h in learn.opt.hypers] == pytest.approx([wd for _,wd in groups]) and {h['mom'] for h in learn.opt.hypers} == {0.9}
    trainable = [p for p in learn.model.parameters() if p.requires_grad]
    assert sorted(map(id, trainable)) == sorted(id(p) for g in learn.opt.param_lists for p in g)  # every trainable parameter, once
    if recipe=='fast': assert all(n.endswith('bias') == any(p is q for q in learn.opt.param_lists[0]) for n,p in learn.model.named_parameters() if p.requires_grad)
    ref = [[p.detach().clone().requires_grad_() for p in g] for g in learn.opt.param_lists]
    start = [[p.detach().clone() for p in g] for g in learn.opt.param_lists]
    sgd = torch.optim.SGD([dict(params=ps, lr=h['lr'], weight_decay=h['wd']) for ps,h in zip(ref, learn.opt.hypers)], momentum=0.9, nesterov=True)
    xb, yb = learn.dls.one_batch()
    for _ in range(2):
        learn.opt.zero_grad(); learn.loss_func(learn.model(xb), yb).backward()
        for g,rg in zip(learn.opt.param_lists, ref):
            for p,q in zip(g, rg): q.grad = p.grad.clone()
        learn.opt.step(); sgd.step()
    for g,rg in zip(learn.opt.param_lists, ref):
        for p,q in zip(g, rg): torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-7)
    assert all(any(not torch.equal(p.detach(), q) for p,q in zip(g, w0)) for g,w0 in zip(learn.opt.param_lists, start))  # every group moved
    learn.opt.set_hyper('wd', 0.); learn.opt.step()  # a third step without the L2 differs from torch's with it: the wd was really in the update
    sgd.step()
    assert not all(torch.allclose(p.detach(), q.detach(), rtol=1e-6, atol=0) for g,rg in zip(learn.opt.param_lists, ref) for p,q in zip(g,rg) if p.dim()==1)

def test_page_lr_schedule_and_predict(syn, tmp_path):
    "page: LR 0 → 0.4 at 5/24 of the epochs → 0, per step; momentum 0.9 and wd 5e-4 fixed; Cutout inside; its model.pkl predicts and serves"
    from cifar_fastai.recipes import piecewise_linear, Cutout
    from cifar_fastai.predict import predict
    from cifar_fastai.app import CifarDemo
    hyp = Hyp()
    learn, m = run(syn, tmp_path/'page', 'page', cbs=hyp)
    h, n = np.array(hyp.h)[:,0], len(learn.dls.train)  # (steps, 3): one group
    f = piecewise_linear((0, 2*5/24, 2), (0, 1, 0), 2, n)
    for i in (0, 2, n, 2*n-1): assert h[i,0] == pytest.approx(0.4*f(i/(2*n)), rel=1e-9), i
    assert h[:,0].max() == pytest.approx(0.4*np.interp(np.arange(1, 2*n+1)/n, (0, 2*5/24, 2), (0, 1, 0)).max())
    assert set(h[:,1]) == {0.9} and set(h[:,2]) == {5e-4}
    assert m['recipe'] == 'page' and m['lr_max'] == 0.4 and m['lr_max_from'] == 'recipe'
    assert [(c.size, c.inside) for c in learn.dls.train.after_batch.fs if isinstance(c, Cutout)] == [(8, True)]
    img = next((syn/'test').rglob('*.png'))
    res = predict(tmp_path/'page/model.pkl', [img], gradcam=tmp_path/'cam')
    assert res[0]['top'][0]['class'] in learn.dls.vocab and any((tmp_path/'cam').glob('*.png'))
    assert CifarDemo(tmp_path/'page/model.pkl')(str(img)) is not None

def test_fast_lr_schedule_per_group(fast):
    "fast: the weights' LR 0 → 1 at 20 % of the epochs → 0.1 at 80 %, then held; the biases' 64×; wd 5e-4 and 5e-4/64; momentum 0.9"
    from cifar_fastai.recipes import piecewise_linear
    learn, m, hyp, _ = fast
    h, n = np.array(hyp.h), len(learn.dls.train)  # (steps, groups, 3): biases, weights
    f = piecewise_linear((0, 0.4, 1.6), (0, 1, .1), 2, n)
    for i in (0, 1, 2*n-1): assert h[i,1,0] == pytest.approx(f(i/(2*n)), rel=1e-9), i
    assert h[-1,1,0] == pytest.approx(0.1)  # held after 80 % of the epochs
    assert h[:,0,0] == pytest.approx(64*h[:,1,0])
    assert set(h[:,0,2]) == {5e-4/64} and set(h[:,1,2]) == {5e-4} and set(h[:,:,1].flatten()) == {0.9}
    assert m['recipe'] == 'fast' and m['lr_max'] == 1.0

def test_fast_evaluates_and_exports_the_ema(fast, tmp_path):
    "The model validated every epoch is the EMA's average, and what the run leaves (model.pkl) is the average at the end"
    from cifar_fastai.predict import load_cifar_learner, predict
    learn, m, _, spy = fast
    assert spy.seen and all(ok_avg and ok_back and differ for ok_avg, ok_back, differ in spy.seen), spy.seen
    pkl = load_cifar_learner(learn.path/'model.pkl', precision='fp32')
    assert same(pkl.model.state_dict(), weights(learn.path/'model.pkl'))  # what predict and the app load
    final_avg = spy.a  # the last validation's model: the average after the last step
    assert same(weights(learn.path/'model.pkl'), final_avg)
    assert pkl.model.prep[0].w.shape == (27,3,3,3)  # the whitening travels with the model
    assert m['tta'] and m['test_accuracy'] == pytest.approx(m['test_accuracy_flip_tta'], abs=1e-6) and 0 <= m['test_accuracy_plain'] <= 1  # validated with flip TTA (logits) every epoch
    assert pkl.tta_logits  # its `flip_tta` averages logits, as the run validated
    img = next(Path(learn.dls.path).rglob('test/*/*.png'))
    assert predict(learn.path/'model.pkl', [img])[0]['top'][0]['class'] in learn.dls.vocab

def test_fast_resume_is_bit_identical_and_other_recipe_refused(syn, fast, tmp_path):
    "fast, 1 epoch then Ctrl-C, then resumed: the same history and model.pkl as the uninterrupted run; a resume as page is refused without --force"
    from cifar_fastai.core import CifarError
    learn, m, _, _ = fast
    out = tmp_path/'cut'
    with pytest.raises(KeyboardInterrupt): run(syn, out, 'fast', cbs=CtrlCInEpoch2())
    assert len(hist(out)) == 1 and 'EMA' in torch.load(out/'checkpoint.pth', weights_only=False)['cbs']
    with pytest.raises(CifarError, match='recipe=fast \\(now page\\)'): run(syn, None, 'page', resume=out)
    _, m2 = run(syn, None, 'fast', resume=out)
    assert m2['resumed_after'] == 1
    pd.testing.assert_frame_equal(hist(out), hist(learn.path))
    assert same(weights(out/'model.pkl'), weights(learn.path/'model.pkl'))

def test_cli_recipe_flag(syn, tmp_path):
    "--recipe on the command line: an unknown one is one line, exit 2; --pct_start with a piecewise recipe too"
    r = cli('--data', syn, '--recipe', 'sgd', '--out', tmp_path/'x')
    assert r.returncode == 2 and 'recipe must be one of course, page, fast' in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = cli('--data', syn, '--recipe', 'page', '--pct_start', 0.3, '--out', tmp_path/'y')
    assert r.returncode == 2 and '--pct_start is for one-cycle recipes' in r.stderr, r.stderr

LADDER_TOOL = Path(__file__).parents[1]/'tools/ladder.py'

def test_ladder_tool_runs_steps_skips_done_ones_and_collects(syn, tmp_path):
    "tools/ladder.py: each named step trains its own recipe; a finished step is skipped on a second call; the CSV is its metrics.json"
    import importlib.util
    spec = importlib.util.spec_from_file_location('ladder', LADDER_TOOL); lad = importlib.util.module_from_spec(spec); spec.loader.exec_module(lad)
    assert abs(lad.proxy_decay(0.99, 5, 97) - 0.99) < 1e-12  # the full data: Page's decay
    assert lad.proxy_decay(0.99, 5, 19) < 0.99**2  # a shorter epoch: a shorter average
    runs = tmp_path/'ladder'
    r = cli(LADDER_TOOL, runs, '--data', syn, '--epochs', 1, '--subset', 1, '--bs', BS, '--steps', 'ema,baseline', module=None)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in runs.iterdir()) == ['baseline', 'ema'] and all((runs/d/'metrics.json').exists() for d in ('baseline','ema'))
    m = {d: json.loads((runs/d/'metrics.json').read_text()) for d in ('baseline','ema')}
    assert m['baseline']['recipe'] == 'ladder:baseline' and m['ema']['recipe'] == 'ladder:ema' and m['ema']['epochs'] == 1
    assert f"ema={{'decay': {lad.proxy_decay(0.99, 5, 80//BS)}, 'every': 5}}" in m['ema']['args']['recipe']  # the EMA spans the proxy's epoch
    before = (runs/'ema/metrics.json').stat().st_mtime_ns
    r = cli(LADDER_TOOL, runs, '--data', syn, '--epochs', 1, '--subset', 1, '--bs', BS, '--steps', 'ema', module=None)
    assert r.returncode == 0 and 'ema done' in r.stdout and (runs/'ema/metrics.json').stat().st_mtime_ns == before, r.stdout+r.stderr
    r = cli(LADDER_TOOL, runs, '--collect_to', tmp_path/'ladder.csv', module=None)
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(tmp_path/'ladder.csv')
    assert df.step.tolist() == ['baseline', 'ema']  # the ladder's order, not the command's
    assert df.test_acc.tolist() == [round(100*m[d]['test_accuracy'], 2) for d in ('baseline','ema')] and df.page_acc.tolist() == [94.1, 94.1]
    r = cli(LADDER_TOOL, runs, '--steps', 'ema,sgd', module=None)
    assert r.returncode == 2 and 'unknown ladder step(s) sgd' in r.stderr and r.stderr.count('\n') == 1, r.stderr

VARIANTS_TOOL = Path(__file__).parents[1]/'tools/variants.py'

def test_variants_tool_changes_what_it_names_and_publishes(syn, tmp_path):
    "tools/variants.py: each variant is the course recipe with its one change (the optimizer's wd at every step, Cutout inside, the reference's loss, label smoothing), trained, skipped when done, published"
    import importlib.util, sys
    sys.path.insert(0, str(VARIANTS_TOOL.parent))
    spec = importlib.util.spec_from_file_location('variants', VARIANTS_TOOL); va = importlib.util.module_from_spec(spec); spec.loader.exec_module(va)
    from cifar_fastai.recipes import RECIPES, recipe_dls, recipe_learner
    from cifar_fastai.augment import Cutout
    assert [va.run_name('wd0', 4e-3), va.run_name('wd0', 0, 1, 1), va.run_name('wd0', 4e-3, 43, 0.2)] == ['wd0-lr0.004', 'wd0-lrfind-full-s1', 'wd0-lr0.004-s43']
    calls, keep = [], va.run_or_resume
    va.run_or_resume = lambda d, tag, what, **kw: calls.append((d.name, kw))
    try: va.run_variants(syn, tmp_path/'v', ['wd0.1'], lr=0, subset=1, seed=1)  # a full run: the default command with the change
    finally: va.run_or_resume = keep
    assert calls[0][0] == 'wd0.1-lrfind-full-s1' and calls[0][1]['lr_max'] is None and calls[0][1]['subset'] is None and calls[0][1]['recipe'].name == 'variant:wd0.1', calls
    wds = {}
    for name, r in (('course', RECIPES['course']), *((n, va.VARIANTS[n][1]) for n in ('wd0', 'wd0.1', 'ref_adam'))):
        learn = recipe_learner(recipe_dls(syn, r, bs=BS), r); hyp = Hyp()
        with warnings.catch_warnings(): warnings.simplefilter('ignore'); learn.fit_one_cycle(1, 1e-3, cbs=hyp)
        wds[name] = {wd for step in hyp.h for _,_,wd in step}
        if name in ('course', 'ref_adam'): wds[name+' (sqr_mom, eps)'] = {(h['sqr_mom'], h['eps']) for h in learn.opt.hypers}
    assert wds == {'course': {0.01}, 'wd0': {0.}, 'wd0.1': {0.1}, 'ref_adam': {0.}, 'course (sqr_mom, eps)': {(0.99, 1e-5)},
                   'ref_adam (sqr_mom, eps)': {(0.999, 1e-8)}}, wds  # fastai's Adam defaults, then each variant's, at every step
    ci = [t for t in recipe_dls(syn, va.VARIANTS['cutout_inside'][1], bs=BS).train.after_batch.fs if isinstance(t, Cutout)]
    assert len(ci) == 1 and ci[0].inside and ci[0].size == 8  # one Cutout, 8×8, inside (not the course's as well)
    learn = recipe_learner(dls := recipe_dls(syn, va.VARIANTS['ref_loss'][1], bs=BS), va.VARIANTS['ref_loss'][1]); xb, yb = dls.one_batch()
    with torch.no_grad(): z = learn.model.eval()(xb)
    ls = recipe_learner(dls, va.VARIANTS['ls0.1'][1]).loss_func
    assert type(ls).__name__ == 'LabelSmoothingCrossEntropyFlat' and ls.func.eps == 0.1  # fastai's label smoothing at its default
    assert type(learn.loss_func).__name__ == 'SoftmaxCrossEntropyFlat' and torch.allclose(learn.loss_func(z, yb), torch.nn.functional.cross_entropy(torch.softmax(z.as_subclass(torch.Tensor).float(), 1), yb.as_subclass(torch.Tensor)))  # the reference's loss, on this batch
    runs = tmp_path/'variants'
    r = cli(VARIANTS_TOOL, runs, '--data', syn, '--variants', 'ref_loss', '--epochs', 1, '--subset', 1, '--bs', BS, module=None)
    assert r.returncode == 0, r.stderr
    m = json.loads((runs/'ref_loss-lr0.004-full/metrics.json').read_text())
    assert m['recipe'] == 'variant:ref_loss' and m['lr_max'] == 4e-3 and m['lr_max_from'] == 'given' and 'SoftmaxCrossEntropyFlat' in m['args']['recipe'], m
    before = (runs/'ref_loss-lr0.004-full/metrics.json').stat().st_mtime_ns
    r = cli(VARIANTS_TOOL, runs, '--data', syn, '--variants', 'ref_loss', '--epochs', 1, '--subset', 1, '--bs', BS, module=None)
    assert r.returncode == 0 and 'ref_loss-lr0.004-full done' in r.stdout and (runs/'ref_loss-lr0.004-full/metrics.json').stat().st_mtime_ns == before, r.stdout+r.stderr
    r = cli(VARIANTS_TOOL, runs, '--copy_to', tmp_path/'pub', module=None)
    df = pd.read_csv(tmp_path/'pub/variants.csv')
    assert r.returncode == 0 and df.variant.tolist() == ['ref_loss'] and df.test_accuracy.tolist() == [m['test_accuracy']], r.stderr
    assert not (tmp_path/'pub/ref_loss-lr0.004-full/model.pkl').exists() and (tmp_path/'pub/ref_loss-lr0.004-full/history.csv').exists()
    for args, msg in ((['--variants', 'wd0,sgd'], 'unknown variant(s) sgd'), (['--variants', ''], 'no variant named'),
                      (['--copy_to', tmp_path/'pub2'], f"{tmp_path/'missing'} is not a folder of runs")):
        r = cli(VARIANTS_TOOL, tmp_path/'missing' if '--copy_to' in args else runs, *args, module=None)
        assert r.returncode == 2 and msg in r.stderr and r.stderr.count('\n') == 1, (args, r.stderr)
    (tmp_path/'afile').write_text('x')  # a file where the runs folder should be: one line, not a traceback
    r = cli(VARIANTS_TOOL, tmp_path/'afile', '--data', syn, '--variants', 'wd0', '--epochs', 1, '--subset', 1, '--bs', BS, module=None)
    assert r.returncode == 2 and 'cannot make the runs folder' in r.stderr and r.stderr.count('\n') == 1, r.stderr

PAGE_REF = Path(__file__).parents[1]/'tools/page_reference.py'

def test_page_reference_resumes_bit_for_bit(tmp_path):
    "tools/page_reference.py (Page's loop, the control for our port): stopped after an epoch and resumed, it ends where the run in one go ends"
    g = torch.Generator().manual_seed(0)
    torch.save(dict(x=torch.randint(0, 256, (80, 3, 32, 32), dtype=torch.uint8, generator=g), y=torch.arange(80) % 10, n_train=64), tmp_path/'t.pt')
    args = ['--tensors', tmp_path/'t.pt', '--epochs', 3, '--bs', 16, '--precision', 'fp32', '--device', 'cpu', '--seed', 1]
    one, two = tmp_path/'one', tmp_path/'two'
    assert cli(PAGE_REF, '--out', one, *args, module=None).returncode == 0
    r = cli(PAGE_REF, '--out', two, *args, '--stop_after', 1, module=None)
    assert r.returncode == 0 and len(json.loads((two/'history.json').read_text())['history']) == 1, r.stderr
    r = cli(PAGE_REF, '--out', two, *args, '--resume', module=None)
    assert r.returncode == 0 and 'resuming after epoch 1' in r.stdout, r.stderr
    h1, h2 = (json.loads((d/'history.json').read_text())['history'] for d in (one, two))
    key = lambda h: [(o['epoch'], o['lr'], o['train_loss'], o['train_acc'], o['test_acc_tta']) for o in h]
    assert len(h1) == 3 and key(h1) == key(h2), (h1, h2)
    c1, c2 = (torch.load(d/'checkpoint.pt', weights_only=False) for d in (one, two))
    assert same(c1['model'], c2['model']) and same(c1['valid'], c2['valid']) and not same(c1['model'], c1['valid'])  # the average is not the model
    r = cli(PAGE_REF, '--out', two, *args[:-2], '--seed', 2, '--resume', module=None)
    assert r.returncode == 2 and 'other arguments' in r.stderr and r.stderr.count('\n') == 1, r.stderr
