"""Render nbs/index.ipynb to README.md: markdown as is, code cells fenced, `#|hide` cells left out, and `#|echo: false` cells
replaced by their saved Markdown output (the figures `tools/figures.py` reads from results/); `--check` fails if README.md is stale."""
# nbdev_readme needs Quarto, a binary download this project's machines can't make; this does the same for our plain index.
import json, re, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent

def has_directive(lines, pat): return any(re.match(r'#\|\s*' + pat, l) for l in lines)

def cell_markdown(c):
    "The Markdown a code cell's saved outputs show: `text/markdown` (else `text/plain`) of its results and displays"
    out = []
    for o in c.get('outputs', []):
        d = o.get('data', {})
        txt = d.get('text/markdown', d.get('text/plain')) if o.get('output_type') in ('execute_result', 'display_data') else None
        if txt is not None: out.append(''.join(txt) if isinstance(txt, list) else txt)
    return '\n\n'.join(out).strip()

def render(nb_path=root/'nbs/index.ipynb'):
    out = []
    for c in json.loads(Path(nb_path).read_text())['cells']:
        src = ''.join(c['source'])
        if c['cell_type']=='markdown': out.append(src); continue
        lines = src.splitlines()
        if has_directive(lines, 'hide'): continue
        if has_directive(lines, r'echo:\s*false'):
            md = cell_markdown(c)
            if md: out.append(md)
            continue
        code = '\n'.join(l for l in lines if not l.startswith('#|')).strip()
        if code: out.append(f'```python\n{code}\n```')
    return '\n\n'.join(out).strip() + '\n'

if __name__ == '__main__':
    nb = Path(sys.argv[sys.argv.index('--nb')+1]) if '--nb' in sys.argv else root/'nbs/index.ipynb'
    dest = Path(sys.argv[sys.argv.index('--out')+1]) if '--out' in sys.argv else root/'README.md'
    text = render(nb)
    if '--check' in sys.argv:
        if not dest.exists() or dest.read_text() != text: sys.exit(f'{dest.name} is not rendered from {nb.name}: run python tools/readme.py')
    else: dest.write_text(text)
