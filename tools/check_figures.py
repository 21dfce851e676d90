"""Fail when a figure that README.md or nbs/index.ipynb quotes disagrees with its committed source in results/.

Every result the README quotes is rendered by an `#|echo: false` cell of nbs/index.ipynb from results/ (`tools/figures.py`).
This re-runs those cells (and the `#|hide` cells that set them up) against results/ as they are now, and fails, naming the
figure, the files it was read from and the value that differs, when
- the notebook's saved output of a figure cell is not what results/ give (the notebook was not re-run after results/ changed),
- README.md does not hold that output verbatim (README edited by hand, or not re-rendered with `python tools/readme.py`),
- a markdown cell of the notebook types a result instead of rendering it (a decimal followed by % or ×, or an LR like 6.35e-3),
- a run's row in results/README.md's table (typed there) does not quote its metrics.json (test accuracy, mirror TTA, lr_max) and
  train.log (the epochs after which it was resumed).

    python tools/check_figures.py [--root DIR]   # DIR: a checkout (default: this one); exit code 1 and one paragraph per disagreement
"""
import ast, json, os, re, sys, difflib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme import cell_markdown, has_directive

TYPED = re.compile(r'\d+\.\d+\s?(?:%|×)|\d\.\d+e-\d+')  # what a typed result looks like in prose

def run_cell(src, ns):
    "Run `src` in `ns` as Jupyter would and return the value of its last expression (None if it ends in a statement)"
    tree = ast.parse(src)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, '<cell>', 'exec'), ns)
    return eval(compile(ast.Expression(last.value), '<cell>', 'eval'), ns) if last else None

def first_diff(have, want):
    "The first differing words of `have` and `want`, with a little context: ('90.65', '91.65', '… words around …')"
    a, b = re.split(r'(\s+)', have), re.split(r'(\s+)', want)
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op != 'equal':
            ctx = ''.join(b[max(0, j1-12):j2+12]).strip()
            return ''.join(a[i1:i2]).strip() or '(nothing)', ''.join(b[j1:j2]).strip() or '(nothing)', ctx
    return None

def check(root):
    "A list of problems (strings), empty when README.md and nbs/index.ipynb agree with results/ under `root`"
    root = Path(root).resolve()
    nb = json.loads((root/'nbs/index.ipynb').read_text())
    readme = (root/'README.md').read_text()
    problems, ns, cwd = [], {'__name__': '__figures__'}, os.getcwd()
    for m in [m for m in sys.modules if m == 'tools' or m.startswith('tools.')]: del sys.modules[m]  # `root`'s tools/, not another checkout's
    os.chdir(root/'nbs')  # where nbdev_test and Jupyter run the notebook: its paths are relative to nbs/
    try:
        for i, c in enumerate(nb['cells']):
            src = ''.join(c['source']); lines = src.splitlines()
            if c['cell_type'] == 'markdown':
                typed = TYPED.findall(src)
                if typed: problems.append(f"nbs/index.ipynb cell {i} (markdown) types result figures {typed}: render them from results/ "
                                          f"in an `#|echo: false` cell (tools/figures.py) instead")
                continue
            figure = has_directive(lines, r'echo:\s*false')
            if has_directive(lines, r'eval:\s*false') or not (figure or has_directive(lines, 'hide')): continue
            name = f"nbs/index.ipynb cell {i} ({next((l for l in lines if not l.startswith('#|')), '').strip()[:60]!r})"
            figs = sys.modules.get('tools.figures'); n0 = len(figs.reads) if figs else 0
            try: value = run_cell(src, ns)
            except Exception as e:
                problems.append(f"{name} cannot be rendered from results/: {type(e).__name__}: {e}"); continue
            if not figure: continue
            figs = sys.modules.get('tools.figures')
            srcs = sorted({Path(p).resolve().relative_to(root).as_posix() for p in (figs.reads[n0:] if figs else [])})
            want = str(value).strip() if value is not None else ''
            found = [('its saved output', cell_markdown(c), want)]  # (where, what it holds, what results/ give)
            paras = [p for p in readme.split('\n\n') if p.strip()]
            for part in (p for p in want.split('\n\n') if p.strip() and p not in readme):  # README: the paragraph that should hold it
                near = max(paras, key=lambda p: difflib.SequenceMatcher(None, p, part, autojunk=False).ratio()) if paras else ''
                found.append(('README.md', near, part))
            for where, have, should in found:
                if have == should: continue
                d = first_diff(have, should)
                what = f"has {d[0]!r} where results/ give {d[1]!r} (in: \u2026{d[2]}\u2026)" if d else "differs from what results/ give"
                problems.append(f"{name}: {where} {what}; source: {', '.join(srcs) or 'none read'}. "
                                f"Re-run nbs/index.ipynb, then python tools/readme.py")
    finally: os.chdir(cwd)
    return problems

def check_runs_table(root):
    "Problems with the rows of results/README.md's run table: each must quote its run's test accuracy, mirror TTA, lr_max and resumes"
    root = Path(root).resolve(); sys.path.insert(0, str(root))
    for m in [m for m in sys.modules if m == 'tools' or m.startswith('tools.')]: del sys.modules[m]
    from tools.figures import Run, pct, lr
    sys.path.remove(str(root))
    problems, text = [], (root/'results/README.md').read_text()
    for d in sorted(p.parent for p in (root/'results').glob('*/metrics.json')):
        r = Run(d.name, root); m = r.metrics
        row = next((l for l in text.splitlines() if l.startswith(f'| [`{d.name}`]')), None)
        if row is None: problems.append(f"results/README.md has no row for results/{d.name}/"); continue
        want = [(f"**{pct(m['test_accuracy'])} %**", 'metrics.json test_accuracy'), (f"({lr(m['lr_max'])})", 'metrics.json lr_max')]
        if 'test_accuracy_flip_tta' in m: want.append((f"mirror TTA: {pct(m['test_accuracy_flip_tta'])} %", 'metrics.json test_accuracy_flip_tta'))
        want += [(f"after epoch {k}", 'train.log resuming after epoch') for k in r.resumes]
        for s, src in want:
            if s not in row: problems.append(f"results/README.md's row for {d.name} does not say {s!r} (from results/{d.name}/{src})")
    return problems

if __name__ == '__main__':
    root = Path(sys.argv[sys.argv.index('--root')+1]) if '--root' in sys.argv else Path(__file__).resolve().parent.parent
    problems = check(root) + check_runs_table(root)
    for p in problems: print(f'check_figures: {p}', file=sys.stderr)
    if problems: sys.exit(1)
    print('check_figures: every figure in README.md, nbs/index.ipynb and results/README.md\'s run table agrees with results/')
