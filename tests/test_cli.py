"The training command line end to end, in subprocesses, on synthetic data."
import json, shutil, tarfile, subprocess, sys, pytest
from pathlib import Path
import pandas as pd
from PIL import Image
from conftest import cli

def test_cli_trains_and_writes_artefacts(syn, tmp_path):
    r = cli('--data', syn.name, '--epochs', 3, '--bs', 8, '--lr_max', 1e-3, '--out', tmp_path/'run', cwd=syn.parent)  # a relative --data
    assert r.returncode == 0, r.stderr
    run = tmp_path/'run'
    assert {'metrics.json','history.csv','model.pkl','curves.png','train.log','report.md','confusion_counts.png','gradcam.png','top_losses.png'} <= {f.name for f in run.iterdir()}
    m = json.loads((run/'metrics.json').read_text())
    assert m['test_accuracy'] > 0.5, m  # 10 classes: chance is 0.1
    assert m['epochs'] == 3 and m['bs'] == 8 and m['lr_max'] == 1e-3 and m['lr_max_from'] == 'given'
    assert m['args']['data'] == str(syn.resolve())  # recorded absolute: the app finds the data from any folder
    assert m['n_train'] == 80 and m['n_test'] == 40
    assert m['device'].startswith('cpu') and m['versions']['fastai'] == '2.8.7'
    from cifar_fastai.learner import resolve_precision, cpu_info
    assert m['precision'] == resolve_precision('auto', 'cpu') and m['cpu']['model'] == cpu_info()['model'] and m['deterministic'] is False
    first = r.stdout.splitlines()[0]
    assert f"precision {m['precision']} (asked: auto)" in first and cpu_info()['model'] in first and 'bf16' in first, first
    h = pd.read_csv(run/'history.csv')
    assert len(h) == 3 and h['valid_accuracy'].iloc[-1] == pytest.approx(m['test_accuracy'], abs=1e-4)
    for a,k in ((.9,'90%'), (.94,'94%')):  # time to accuracy: the first epoch at the target, and the wall time so far (history.csv's times are rounded to seconds)
        first = next((i+1 for i,v in enumerate(h['valid_accuracy']) if v >= a), None)
        assert (m['time_to'][k] or {}).get('epoch') == first, (k, m['time_to'], list(h['valid_accuracy']))
        if first: assert abs(m['time_to'][k]['seconds'] - pd.to_timedelta(h['time']).dt.total_seconds()[:first].sum()) <= first, m['time_to']
    log = (run/'train.log').read_text().splitlines()
    assert sum(l.startswith('epoch ') for l in log) == 3  # one plain line per epoch
    assert 'epoch 3/3' in r.stdout and 'test accuracy' in r.stdout
    assert (run/'curves.png').read_bytes()[:4] == b'\x89PNG'

def test_cli_lr_find_picks_lr_and_never_overwrites(syn, tmp_path):
    out = tmp_path/'run'; out.mkdir(); (out/'metrics.json').write_text('{"earlier": true}')
    r = cli('--data', syn, '--epochs', 1, '--bs', 16, '--lr_find_iters', 20, '--out', out)
    assert r.returncode == 0, r.stderr
    assert json.loads((out/'metrics.json').read_text()) == {'earlier': True}  # the earlier run is untouched
    m = json.loads((tmp_path/'run-2/metrics.json').read_text())
    from cifar_fastai.train import pick_lr
    rf = pd.read_csv(tmp_path/'run-2/lr_find.csv')
    lr, how = pick_lr(rf['lr'], rf['loss'], 20)  # the rule, applied to the recorded curve
    assert lr is not None and m['lr_max'] == pytest.approx(lr, rel=1e-6) and m['lr_max_from'] == f'lr_find:{how}', (m, lr, how)
    assert (tmp_path/'run-2/lr_find.png').exists() and len(pd.read_csv(tmp_path/'run-2/lr_find.csv')) >= 10

def test_cli_help_lists_hyperparameters():
    r = cli('--help')
    assert r.returncode == 0
    for a in ('--data','--epochs','--bs','--lr_max','--pct_start','--seed','--out','--subset','--lr_find_iters','--precision','--deterministic'): assert a in r.stdout

def _bad_layouts(root, syn):
    "Folders that are not CIFAR in fastai's layout, each with the words its error must contain"
    cases = {}
    (root/'empty').mkdir(); cases['empty'] = 'no train/ folder'
    shutil.copytree(syn, root/'extra'); shutil.copytree(syn/'test/cat', root/'extra/test/zebra'); cases['extra'] = 'in test/ but not in train/: zebra'
    (root/'noimg/train/cat').mkdir(parents=True); (root/'noimg/test/cat').mkdir(parents=True)
    (root/'noimg/train/cat/readme.txt').write_text('x'); cases['noimg'] = 'no images'
    shutil.copytree(syn, root/'corrupt'); (root/'corrupt/train/cat/0003.png').write_bytes(b'\x89PNG garbage'); cases['corrupt'] = 'unreadable image'
    (root/'trunc.tgz').write_bytes(b'\x1f\x8b' + b'\x00'*50); cases['trunc.tgz'] = 'corrupt or truncated'
    (root/'notar.txt').write_text('x'); cases['notar.txt'] = 'not a .tgz'
    cases['missing'] = 'data path not found'
    return cases

def test_cli_bad_data_one_line_exit_2(syn, tmp_path):
    for name, words in _bad_layouts(tmp_path, syn).items():
        r = cli('--data', tmp_path/name, '--epochs', 1, '--bs', 4, '--lr_max', 1e-3, '--out', tmp_path/'out'/name)
        assert r.returncode == 2, (name, r.stderr)
        err = r.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith('cifar_fastai: error:') and words in err[0], (name, r.stderr)

@pytest.mark.parametrize('args,words', [
    (['--epochs', 0], 'epochs must be'), (['--bs', 0], 'bs must be'), (['--pct_start', 1.0], 'pct_start'),
    (['--pct_start', 0], 'pct_start'), (['--lr_max', -1], 'lr_max'), (['--subset', 0], 'subset'),
    (['--bs', 512], 'lower --bs'), (['--out', '/dev/null/run', '--bs', 8], 'cannot create run folder')])
def test_cli_bad_args_one_line_exit_2(syn, tmp_path, args, words):
    r = cli('--data', syn, '--lr_max', 1e-3, *args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and words in err[0], r.stderr
    assert not (tmp_path/'runs').exists()  # a refused start leaves no run folder behind

def test_cli_wrong_type_is_argparse_error(syn):
    r = cli('--data', syn, '--epochs', 'two')
    assert r.returncode == 2 and 'invalid int value' in r.stderr and 'Traceback' not in r.stderr

@pytest.mark.parametrize('native', [True, False])
def test_auto_precision_follows_the_cpu(syn, tmp_path, monkeypatch, capsys, native):
    "'auto' trains in bf16 where the CPU computes it natively and in fp32 where it does not (simulated both ways)"
    import cifar_fastai.learner, cifar_fastai.train
    from cifar_fastai.train import train
    for mod in (cifar_fastai.learner, cifar_fastai.train): monkeypatch.setattr(mod, 'cpu_bf16_native', lambda info=None: native)
    learn, m = train(syn, epochs=1, bs=16, lr_max=1e-3, seed=0, out=tmp_path/'run', bar=False)
    want = 'bf16' if native else 'fp32'
    assert m['precision'] == want and learn.precision == want and hasattr(learn, 'mixed_precision') == native
    assert m['cpu']['bf16_native'] is native
    first = capsys.readouterr().out.splitlines()[0]
    assert f"precision {want} (asked: auto)" in first and ('native bf16' if native else 'no native bf16') in first, first

def test_deterministic_switches_cudnn_autotuning_off(syn, tmp_path):
    "cuDNN's autotuner stays on unless --deterministic (the flags are set on any machine; they matter on CUDA)"
    import torch
    from cifar_fastai.train import train
    for det in (True, False):
        _, m = train(syn, epochs=1, bs=16, lr_max=1e-3, seed=0, out=tmp_path/f'run{det}', bar=False, precision='fp32', deterministic=det)
        assert (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, m['deterministic']) == (not det, det, det)

def test_bad_precision_one_line_exit_2(syn, tmp_path):
    r = cli('--data', syn, '--epochs', 1, '--bs', 8, '--precision', 'fp8', '--out', tmp_path/'run')
    assert r.returncode == 2 and 'precision must be one of auto, fp32, bf16, fp16' in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path/'run').exists()

def test_bad_reference_log_one_line_exit_2(syn, tmp_path):
    (tmp_path/'ref.csv').write_text('epoch,accuracy\n1,50\n')
    r = cli('--data', syn, '--epochs', 1, '--bs', 8, '--reference', tmp_path/'ref.csv', '--out', tmp_path/'run')
    assert r.returncode == 2 and 'needs the columns epoch and test_accuracy_pct' in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path/'run').exists()

def test_range_test_tool_records_the_curve_and_the_pick_train_would_make(syn, tmp_path):
    "tools/range_test.py: train's range test alone; its pick is the rule applied to the curve it saves, and the same seed gives the same curve"
    tool = Path(__file__).parents[1]/'tools/range_test.py'
    runs = [subprocess.run([sys.executable, str(tool), '--data', str(syn), '--out', str(tmp_path/f'rt{i}'), '--seed', '3', '--lr_find_iters', '20', '--bs', '8'],
                           capture_output=True, text=True, timeout=600) for i in (1, 2)]
    for r in runs: assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path/'rt1/range_test.json').read_text())
    from cifar_fastai.lr_find import pick_lr, lowest
    rf = pd.read_csv(tmp_path/'rt1/lr_find.csv')
    lr, how = pick_lr(rf['lr'], rf['loss'], 20, funcs=(lowest(),))
    assert res['lr_max'] == pytest.approx(lr, rel=1e-6) and res['how'] == f'lr_find:{how}' and res['seed'] == 3, res
    assert not (tmp_path/'rt1/metrics.json').exists() and not (tmp_path/'rt1/checkpoint.pth').exists()  # no training
    pd.testing.assert_frame_equal(rf, pd.read_csv(tmp_path/'rt2/lr_find.csv'))  # seeded: the same curve twice
    bad = subprocess.run([sys.executable, str(tool), '--data', str(tmp_path/'nowhere')], capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
