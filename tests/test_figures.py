"`tools/check_figures.py`: README/index figures agree with results/, and the check fails, naming the figure, when they don't"
import json, re, shutil, subprocess, sys
from pathlib import Path
import pytest
import pandas as pd
from conftest import cli

ROOT = Path(__file__).resolve().parent.parent
RUN2 = 'results/run2-cutout8-lrdiv3'

@pytest.fixture
def repo(tmp_path):
    "A copy of what the check reads: README.md, nbs/index.ipynb, results/ and tools/"
    for p in ('README.md', 'nbs/index.ipynb'): (tmp_path/p).parent.mkdir(exist_ok=True); shutil.copy(ROOT/p, tmp_path/p)
    for p in ('results', 'tools'): shutil.copytree(ROOT/p, tmp_path/p, ignore=shutil.ignore_patterns('*.png', '__pycache__'))
    return tmp_path

def check(root):
    r = subprocess.run([sys.executable, str(root/'tools/check_figures.py'), '--root', str(root)], capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout + r.stderr

def test_agrees(repo):
    rc, out = check(repo)
    assert rc == 0, out
    assert 'agrees' in out

def test_this_checkout_agrees():
    "The committed README and notebook, not a copy: what CI checks"
    rc, out = check(ROOT)
    assert rc == 0, out

def test_metrics_changed(repo):
    "A run's test accuracy changes in metrics.json: README and the notebook's saved outputs still say the old one"
    fn = repo/RUN2/'metrics.json'
    m = json.loads(fn.read_text()); old = f"{100*m['test_accuracy']:.2f}"
    m['test_accuracy'] = 0.9123; fn.write_text(json.dumps(m))
    rc, out = check(repo)
    assert rc == 1
    assert f"README.md has '{old}' where results/ give '91.23'" in out or f"README.md has '**{old}' where results/ give '**91.23'" in out, out
    assert 'its saved output has' in out, out  # the notebook too
    assert f'{RUN2}/metrics.json' in out  # names the source

def test_seeds_changed(repo):
    "A run's row in results/default/seeds.csv changes (a run published or re-copied): the headline and the seeds table are stale, and the check names seeds.csv"
    fn = repo/'results/default/seeds.csv'
    df = pd.read_csv(fn); df.loc[0, 'test_accuracy'] = 0.8912; df.to_csv(fn, index=False)
    rc, out = check(repo)
    assert rc == 1 and 'results/default/seeds.csv' in out and '89.12' in out, out

def test_per_class_changed(repo):
    "A class's accuracy changes in per_class.csv: the check names the value and the file"
    fn = repo/RUN2/'per_class.csv'
    t = fn.read_text(); row = next(l for l in t.splitlines() if l.startswith('cat,'))
    acc = float(row.split(',')[3]); new = f'{acc+0.011:.4f}'
    fn.write_text(t.replace(row, row.replace(f'{acc:.4f}', new, 1)))
    rc, out = check(repo)
    assert rc == 1
    assert f"'({100*acc:.1f}' where results/ give '({100*float(new):.1f}'" in out, out
    assert f'{RUN2}/per_class.csv' in out

def test_train_log_resumes(repo):
    "The resumes README states come from train.log: one fewer resume line changes the figure"
    fn = repo/'results/run1-cutout16-lrdiv10/train.log'
    t = fn.read_text(); assert t.count('resuming after epoch 19/24') == 1
    fn.write_text(t.replace('resuming after epoch 19/24', 'resuming after epoch 18/24'))
    rc, out = check(repo)
    assert rc == 1 and "'19' where results/ give '18'" in out, out

def test_readme_edited(repo):
    "README.md edited by hand, results/ and notebook unchanged: the check names README"
    fn = repo/'README.md'; t = fn.read_text()
    m = re.search(r'\*\*(\d+\.\d\d) ± ', t); assert m, 'no headline mean ± std in README'  # the headline, rendered from results/default/seeds.csv
    was = m[1]; typed = f'{float(was)+0.1:.2f}'
    fn.write_text(t.replace(m[0], f'**{typed} ± ', 1))
    rc, out = check(repo)
    assert rc == 1 and f"README.md has '**{typed}' where results/ give '**{was}'" in out, out
    assert 'saved output' not in out  # the notebook still agrees

def test_typed_figure(repo):
    "A result typed into a markdown cell of the index, instead of rendered, fails"
    fn = repo/'nbs/index.ipynb'; nb = json.loads(fn.read_text())
    nb['cells'].append(dict(cell_type='markdown', metadata={}, source=['The run reached 90.65 % after 24 epochs.']))
    fn.write_text(json.dumps(nb))
    rc, out = check(repo)
    assert rc == 1 and "types result figures ['90.65 %']" in out, out

def test_missing_source(repo):
    "A figure whose source is gone fails with the file's name, not a traceback"
    (repo/RUN2/'reference.csv').unlink()
    rc, out = check(repo)
    assert rc == 1 and 'cannot be rendered from results/' in out and 'reference.csv' in out, out
    assert 'Traceback' not in out

def test_runs_table(repo):
    "results/README.md's run table quotes each run's metrics.json: a changed mirror-TTA accuracy there is named"
    fn = repo/'results/run1-cutout16-lrdiv10/metrics.json'
    m = json.loads(fn.read_text()); m['test_accuracy_flip_tta'] = 0.8999; fn.write_text(json.dumps(m))
    rc, out = check(repo)
    assert rc == 1
    assert "results/README.md's row for run1-cutout16-lrdiv10 does not say 'mirror TTA: 89.99 %'" in out, out

def test_recipe_table_time_to(repo):
    "The recipes' table quotes each run's time to 94 % from its metrics.json (`time_to`): a changed time is named; one never reached reads '–'"
    run = sorted(p for p in (repo/'results/recipes').glob('*') if (p/'metrics.json').exists())[0]
    fn = run/'metrics.json'; m = json.loads(fn.read_text())
    sys.path.insert(0, str(ROOT))
    from tools.figures import Run, reach, mins
    r = Run(f'recipes/{run.name}', repo)
    t = m['time_to']['90%']; assert t and reach(r, .90) == f"{t['epoch']} ({mins(t['seconds'])})"
    m['time_to']['90%'] = None; fn.write_text(json.dumps(m))
    assert reach(r, .90) == '–'
    rc, out = check(repo)
    assert rc == 1 and f'recipes/{run.name}/metrics.json' in out, out

SEEDS_TOOL = ROOT/'tools/seeds.py'

def test_seeds_tool_copies_and_summarises(tmp_path):
    "tools/seeds.py --copy_to: every finished default-command run (not a fixed-LR proxy), without its model; seeds.csv and the spread over seeds"
    runs = tmp_path/'runs'; m = json.loads((ROOT/RUN2/'metrics.json').read_text())
    for s, acc in ((1, .9012), (2, .9088), (3, .9050)):
        (d := runs/f'default-s{s}').mkdir(parents=True)
        (d/'metrics.json').write_text(json.dumps({**m, 'test_accuracy': acc, 'args': {**m['args'], 'seed': s}}))
        (d/'model.pkl').write_bytes(b'x'); (d/'curves.png').write_bytes(b'png')
    (d := runs/'proxy').mkdir(); (d/'metrics.json').write_text(json.dumps({**m, 'lr_max_from': 'given'}))  # a fixed LR: not the default command
    (d := runs/'cutout16').mkdir(); (d/'metrics.json').write_text(json.dumps({**m, 'args': {**m['args'], 'cutout': 16}}))  # run 1's setting: not either
    (d := tmp_path/'run2').mkdir(); (d/'metrics.json').write_text(json.dumps({**m, 'test_accuracy': .9030}))  # published beside pub/ before: counted
    (d := tmp_path/'run1').mkdir(); (d/'metrics.json').write_text(json.dumps({**m, 'args': {**m['args'], 'lr_div': 10}}))  # beside it, /10: not counted
    r = cli(SEEDS_TOOL, runs, '--copy_to', tmp_path/'pub', module=None)
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(tmp_path/'pub/seeds.csv')
    assert df.seed.tolist() == [1, 2, 3, 42] and df.run.tolist() == ['pub/default-s1', 'pub/default-s2', 'pub/default-s3', 'run2']
    assert (tmp_path/'pub/default-s2/curves.png').exists() and not (tmp_path/'pub/default-s2/model.pkl').exists()
    assert not (tmp_path/'pub/proxy').exists() and not (tmp_path/'pub/cutout16').exists()  # not copied either
    assert 'test accuracy over 4 runs: 90.45 ± 0.33 % (min 90.12, max 90.88; 4 over 90 %)' in r.stdout, r.stdout
    r = cli(SEEDS_TOOL, runs, '--seeds', '1,1', module=None)
    assert r.returncode == 2 and 'distinct seeds' in r.stderr and r.stderr.count('\n') == 1, r.stderr
    r = cli(SEEDS_TOOL, tmp_path/'empty', '--copy_to', tmp_path/'e/pub', module=None)  # nothing in runs/, nothing beside pub/
    assert r.returncode == 2 and 'no finished run of the default command' in r.stderr, r.stderr

def test_lr_sweep_tool_names_and_publishes(tmp_path):
    "tools/lr_sweep.py: a repeat with another seed gets its own folder; --copy_to keeps fixed-LR runs only, without models, one row each in proxy.csv"
    import importlib.util
    spec = importlib.util.spec_from_file_location('lr_sweep', ROOT/'tools/lr_sweep.py'); sw = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT/'tools')); spec.loader.exec_module(sw)
    assert (sw.run_name(4e-3), sw.run_name(4e-3, 43)) == ('proxy-lr0.004', 'proxy-lr0.004-s43')
    runs = tmp_path/'runs'; m = json.loads((ROOT/RUN2/'metrics.json').read_text())
    for lr, s, acc in ((4e-3, 42, .82), (4e-3, 43, .815), (8e-3, 42, .81)):
        (d := runs/sw.run_name(lr, s)).mkdir(parents=True)
        (d/'metrics.json').write_text(json.dumps({**m, 'lr_max': lr, 'lr_max_from': 'given', 'test_accuracy': acc, 'args': {**m['args'], 'seed': s, 'subset': .2}}))
        (d/'model.pkl').write_bytes(b'x')
    (d := runs/'ranged').mkdir(); (d/'metrics.json').write_text(json.dumps(m))  # its LR from the range test: not a point of the sweep
    (d := runs/'wd0-lr0.004').mkdir(); (d/'metrics.json').write_text(json.dumps({**m, 'lr_max': 4e-3, 'lr_max_from': 'given', 'recipe': 'variant:wd0'}))  # another recipe (tools/variants.py's)
    df = sw.copy_runs(runs, tmp_path/'pub')
    assert df.run.tolist() == ['proxy-lr0.004', 'proxy-lr0.004-s43', 'proxy-lr0.008'] and df.seed.tolist() == [42, 43, 42]
    assert pd.read_csv(tmp_path/'pub/proxy.csv').test_accuracy.tolist() == [.82, .815, .81]
    assert not (tmp_path/'pub/proxy-lr0.004/model.pkl').exists() and not (tmp_path/'pub/ranged').exists() and not (tmp_path/'pub/wd0-lr0.004').exists()
