"Render nbs/index.ipynb to README.md (markdown as is, code cells fenced, `#|hide` cells left out); `--check` fails if README.md is stale."
# nbdev_readme needs Quarto, a binary download this project's machines can't make; this does the same for our plain index.
import json, re, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent

def render(nb_path=root/'nbs/index.ipynb'):
    out = []
    for c in json.loads(Path(nb_path).read_text())['cells']:
        src = ''.join(c['source'])
        if c['cell_type']=='markdown': out.append(src); continue
        lines = src.splitlines()
        if any(re.match(r'#\|\s*hide', l) for l in lines): continue
        code = '\n'.join(l for l in lines if not l.startswith('#|')).strip()
        if code: out.append(f'```python\n{code}\n```')
    return '\n\n'.join(out).strip() + '\n'

if __name__ == '__main__':
    text, dest = render(), root/'README.md'
    if '--check' in sys.argv:
        if not dest.exists() or dest.read_text() != text: sys.exit('README.md is not rendered from nbs/index.ipynb: run python tools/readme.py')
    else: dest.write_text(text)
