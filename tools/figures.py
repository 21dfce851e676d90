"""Figures for README/index, read from the committed artefacts in `results/`, never typed.

`nbs/index.ipynb` renders every result it quotes with these helpers in `#|echo: false` cells (their Markdown output is
what `tools/readme.py` puts into README.md), and `tools/check_figures.py` re-renders those cells from `results/` and fails
when README or the notebook's saved outputs disagree. Each `Run` remembers which files it read, so a failure names them.
"""
import csv, json, re
from pathlib import Path

__all__ = ['Run', 'Markdown', 'md', 'pct', 'lr', 'mins', 'table', 'said', 'recipe_runs', 'reach', 'recipe_table', 'seed_runs', 'seed_spread', 'seed_table']

reads = []  # every file a `Run` read, in order: `tools/check_figures.py` names them when a figure disagrees

class Markdown(str):
    "A Markdown string that Jupyter shows rendered (`text/markdown`), so the notebook shows what README.md gets"
    def _repr_markdown_(self): return str(self)

def md(*parts): return Markdown('\n'.join(parts).strip())

def pct(x, nd=2):
    "A fraction (0.9065) as a percentage with `nd` decimals: '90.65'"
    return f'{100*float(x):.{nd}f}'

def lr(x):
    "A learning rate as the README writes it: 6.35e-3"
    m, e = f'{float(x):.2e}'.split('e')
    return f'{m}e{int(e)}'

def secs(s):
    "'h:mm:ss' (history.csv's `time`) as seconds; a number as it is"
    return sum(int(p)*60**i for i, p in enumerate(reversed(s.split(':')))) if isinstance(s, str) else s

def mins(s):
    "Seconds (or 'h:mm:ss') as '5 min 13 s'; '2 h 5 min' from an hour on"
    s = round(float(secs(s))); h, m = divmod(s//60, 60)
    return f'{h} h {m} min' if h else f'{m} min {s%60} s'

def said(xs):
    "A list as prose: '1', '1 and 10', '5, 15, 20 and 24'"
    xs = [str(x) for x in xs]
    return ', '.join(xs[:-1]) + f' and {xs[-1]}' if len(xs) > 1 else xs[0]

def table(header, rows):
    "A Markdown table: `header` a list of cells, `rows` a list of lists"
    line = lambda cells: '| ' + ' | '.join(str(c) for c in cells) + ' |'
    return '\n'.join([line(header), '|' + '---|'*len(header)] + [line(r) for r in rows])

def _csv(fn): return list(csv.DictReader(open(fn, newline='')))

class Run:
    "One run's committed artefacts: `results/<name>/` (metrics.json, history.csv, per_class.csv, reference.csv, lr_find.csv, train.log)"
    def __init__(self, name, root='..'):
        self.name, self.dir = name, Path(root)/'results'/name
    def _f(self, fn):
        p = self.dir/fn
        reads.append(p)
        return p
    @property
    def metrics(self): return json.loads(self._f('metrics.json').read_text())
    @property
    def history(self): return _csv(self._f('history.csv'))
    @property
    def per_class(self): return _csv(self._f('per_class.csv'))
    @property
    def reference(self): return _csv(self._f('reference.csv'))
    @property
    def lr_find(self): return [(float(o['lr']), float(o['loss'])) for o in _csv(self._f('lr_find.csv'))]
    @property
    def resumes(self):
        "Epochs after which the run was resumed, in order, from the 'resuming after epoch k/n' lines of train.log"
        return [int(k) for k in re.findall(r'^resuming after epoch (\d+)/', self._f('train.log').read_text(), re.M)]
    def acc(self, epoch, split='valid'):
        "This run's `split` ('valid' is the test set, 'train') accuracy after `epoch` (from 1), a fraction, from history.csv"
        return float(self.history[epoch-1][f'{split}_accuracy'])
    @property
    def jpeg_check(self):
        "`tools/jpeg_check.py`'s result for this run's model (jpeg_check.json), or None where it was not run"
        return json.loads(self._f('jpeg_check.json').read_text()) if (self.dir/'jpeg_check.json').exists() else None
    def first_at(self, a):
        "The first epoch (from 1) whose test accuracy in history.csv is at least `a` (a fraction); None if none is"
        return next((i+1 for i,o in enumerate(self.history) if float(o['valid_accuracy']) >= a), None)
    def median_epoch(self):
        "The median seconds per epoch, from history.csv: robust to the epochs that shared the cores or were paused"
        t = sorted(self.epoch_times()); return (t[(len(t)-1)//2] + t[len(t)//2])/2
    def epoch_times(self, first=1):
        "Seconds per epoch (training and test pass) of epochs `first`.. (from 1), from history.csv"
        return [secs(o['time']) for o in self.history[first-1:]]
    def ref(self, epoch):
        "The reference run's test accuracy after `epoch`, in %, from reference.csv"
        return float(next(o for o in self.reference if int(o['epoch'])==epoch)['reference (%)'])
    def weakest(self):
        "The class with the lowest test accuracy, as a per_class.csv row"
        return min(self.per_class, key=lambda o: float(o['accuracy']))
    def confused(self, a, b):
        "How many test images of class `a` the model called `b`, from per_class.csv's `most_confused_with` ('dog (76)')"
        row = next(o for o in self.per_class if o['class']==a)
        m = re.fullmatch(r'(.+) \((\d+)\)', row['most_confused_with'])
        if not m or m[1]!=b: raise ValueError(f"{self.dir}/per_class.csv: {a}'s most confused class is {row['most_confused_with']}, not {b}")
        return int(m[2])

def recipe_runs(root='..'):
    "The `Run`s of `results/recipes/` (issue 18's full runs of Page's recipes) that have a metrics.json, by name"
    return [Run(f'recipes/{p.name}', root) for p in sorted((Path(root)/'results'/'recipes').glob('*')) if (p/'metrics.json').exists()]

def reach(r, a):
    "`r`'s first epoch at test accuracy `a` (a fraction) and the wall time so far (metrics.json's `time_to`: LR range test, training and test passes), '–' if never; a run from before `time_to` gives the epoch only"
    m = r.metrics
    if 'time_to' not in m: return str(r.first_at(a) or '–')
    t = m['time_to'][f'{a:.0%}']
    return f"{t['epoch']} ({mins(t['seconds'])})" if t else '–'

def recipe_table(runs, course=None, link='results/'):
    "The Markdown of issue 18's table: one row per `Run` (`course`, a course run to compare with, first), and what the columns mean; `link`: where results/ is from the page"
    rows, old_tta = [], False
    for r in ([course] if course else []) + list(runs):
        m = r.metrics
        old = m.get('recipe')=='fast' and not m.get('tta'); old_tta |= old  # a fast run from before FlipTTA: validated on one view
        rows.append([m.get('recipe', 'course'), f"[`{r.name.split('/')[-1]}`]({link}{r.name}/report.md)", m['args']['seed'], m['epochs'],
                     pct(m.get('test_accuracy_plain', m['test_accuracy'])), pct(m['test_accuracy'] if m.get('tta') else m['test_accuracy_flip_tta']) + ('¹' if old else ''),  # a TTA recipe's own figure: its last test pass
                     f"{reach(r, .90)} / {reach(r, .94)}" + (' (TTA)' if m.get('tta') else ''), mins(r.median_epoch()),
                     '–' if (j := r.jpeg_check) is None else f"{j['flip_tta']['png_minus_jpeg']:+.2f} ({j['flip_tta']['jpeg']:.2f} → {j['flip_tta']['png']:.2f})",
                     f"{m['cpu']['model']}, {m['cpus']} cores, {m['precision']}"])
    hit = [r.name.split('/')[-1] for r in runs if max((m := r.metrics)['test_accuracy'], m['test_accuracy_flip_tta']) >= .94]  # either figure
    fast = [r for r in runs if r.metrics.get('recipe')=='fast' and r.metrics['precision']=='bf16' and r.metrics.get('time_to')]
    hour = ("Time to 94 % with `fast` in bf16 (the target: an hour on 2 cores with native bf16): " + said([f"{reach(r, .94)} in `{r.name.split('/')[-1]}`" if r.metrics['time_to']['94%'] else
                                                                                                       f"not reached in `{r.name.split('/')[-1]}`" + ('' if not (t := r.metrics['time_to']['90%']) else f" (90 % at epoch {t['epoch']}, after {mins(t['seconds'])})") for r in fast])
            if fast else "The target of an hour to 94 % is for a CPU with native bf16; no `fast` run here has had one yet")
    return '\n'.join([table(['recipe', 'run', 'seed', 'epochs', 'test accuracy (%)', 'with flip TTA (%)', 'first epoch at 90 % / 94 % (wall time so far)', 'time per epoch (median)', 'PNG − JPEG, flip TTA (points)', 'CPU, precision'], rows), "",
       "Flip TTA: the mean of each test image's and its mirror's probabilities, after training; for `fast`, of their logits, in every epoch's test pass (Page's way), "
       "so that its epochs at 90 % and 94 % are TTA's (marked)" + ("; ¹ a `fast` run from before that change: validated on one view, TTA on probabilities after training" if old_tta else "") + ". "
       "Wall time so far: the training and test passes of every epoch up to that one, and the LR range test where one ran (a run from before `time_to` gives the epoch only). "
       "Time per epoch: training and test pass, the median over the run's epochs. " + hour + ". "
       "PNG − JPEG: `tools/jpeg_check.py` on the run's model, the same 4,000 test images (4 classes) as lossless PNG and as the JPEG copy we train on, accuracy with flip TTA "
       "(`jpeg_check.json` in the run's folder); Page's figures were measured on the lossless data. "
       + (f"Runs at 94 % or more (either figure): {said(hit)}." if hit else "No run here has reached 94 % yet.")])

def seed_runs(root='..'):
    "The default command's runs over seeds, one dict per run by seed: `results/default/seeds.csv` (`tools/seeds.py --copy_to results/default`)"
    p = Path(root)/'results'/'default'/'seeds.csv'; reads.append(p)
    return _csv(p)

def seed_spread(rows):
    "The test accuracy of `seed_runs` in %: n, mean, std (n-1; None for one run), min, max, and how many are over 90 %"
    a = [100*float(o['test_accuracy']) for o in rows]; n = len(a); mean = sum(a)/n
    return dict(n=n, mean=mean, std=(sum((x-mean)**2 for x in a)/(n-1))**.5 if n > 1 else None, min=min(a), max=max(a), over_90=sum(x > 90 for x in a))

def seed_table(rows, link='results/'):
    "The Markdown table of `seed_runs`: one row per run (linked to its report), then mean ± std, min and max; `link`: where results/ is from the page"
    s = seed_spread(rows)
    body = [[f"[`{o['run'].split('/')[-1]}`]({link}{o['run']}/report.md)", o['seed'], lr(o['lr_max']), pct(o['test_accuracy']),
             pct(o['test_accuracy_flip_tta']) if o['test_accuracy_flip_tta'] else '–', f"{o['cpu']}, {o['precision']}"] for o in rows]
    std = f" ± {s['std']:.2f}" if s['std'] is not None else ''
    body.append([f"**{'mean ± std' if std else 'one run'}**", '', f"{lr(min(float(o['lr_max']) for o in rows))} – {lr(max(float(o['lr_max']) for o in rows))}" if len(rows) > 1 else '',
                 f"**{s['mean']:.2f}{std}** (min {s['min']:.2f}, max {s['max']:.2f})" if std else f"**{s['mean']:.2f}**", '', f"{s['over_90']} of {s['n']} over 90 %"])
    return table(['run', 'seed', '`lr_max` (range test, lowest/3)', 'test accuracy after epoch 24 (%)', 'with flip TTA (%)', 'CPU, precision'], body)
