"The benchmark scripts run (on tiny data, tiny budgets: these are not timings) and print every figure and ratio"
import re, sys, subprocess
from pathlib import Path
import pytest

BENCH = Path(__file__).parent.parent/'bench'

@pytest.mark.parametrize('script,args,lines', [
    ('data.py', ['--fast_batches', 2, '--pil_batches', 2, '--workers', 0, '--rounds', 1], ['cache build:', 'cache load:', 'ratio fast/per-image:']),
    ('train.py', ['--steps', 1, '--rounds', 1], ['ratio fastai/plain (fp32):', 'ratio fastai/plain (bf16):', 'ratio bf16/fp32 (fastai):', 'ratio bf16/fp32 (plain):']),
    ('recipes.py', ['--steps', 1, '--rounds', 1, '--precisions', 'fp32'], ['ratio page/course step cost (fp32):', 'ratio fast/course step cost (fp32):']),
    ('eval.py', ['--n', 8, '--rounds', 1], ['ratio fastai/plain (fp32):', 'ratio fastai/plain (bf16):', 'ratio bf16/fp32 (fastai):', 'ratio bf16/fp32 (plain):']),
])
def test_bench_script_prints_its_ratios(tmp_path, script, args, lines):
    from cifar_fastai.data import make_synthetic_cifar
    src = make_synthetic_cifar(tmp_path/'syn', n_train=8, n_test=4, n_classes=2)
    r = subprocess.run([sys.executable, str(BENCH/script), '--data', str(src), '--bs', '4', *map(str, args)], capture_output=True, text=True, timeout=600)
    assert r.returncode==0, r.stderr[-2000:]
    for l in lines:
        m = re.search(re.escape(l) + r' ([\d.,]+)', r.stdout)
        assert m, (l, r.stdout)
        if l.startswith('ratio'): assert float(m.group(1).replace(',', '')) > 0, (l, r.stdout)  # timings of tiny data may print 0.00 s
    if script != 'data.py': assert re.search(r"^# native bf16: (True|False); precision 'auto' picks (bf16|fp32) on this CPU$", r.stdout, re.M), r.stdout
