"""Figures for README/index, read from the committed artefacts in `results/`, never typed.

`nbs/index.ipynb` renders every result it quotes with these helpers in `#|echo: false` cells (their Markdown output is
what `tools/readme.py` puts into README.md), and `tools/check_figures.py` re-renders those cells from `results/` and fails
when README or the notebook's saved outputs disagree. Each `Run` remembers which files it read, so a failure names them.
"""
import csv, json, re
from pathlib import Path

__all__ = ['Run', 'Markdown', 'md', 'pct', 'lr', 'mins', 'table', 'said']

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
