"Interrupted runs resume to the same result; the same command gives the same result; failures never cost earlier results."
import os, sys, json, signal, subprocess, time, errno, pytest, torch
import pandas as pd
from pathlib import Path
from conftest import cli, sigint_default
from fastai.callback.core import Callback

ARGS = ['--epochs', 3, '--bs', 8, '--lr_max', 1e-3, '--seed', 0]

class CtrlCInEpoch2(Callback):
    "Ctrl-C at the first batch of epoch 2: epoch 1's checkpoint is written"
    def after_batch(self):
        if self.epoch==1: raise KeyboardInterrupt

def hist(run): return pd.read_csv(Path(run)/'history.csv').drop(columns='time')

def weights(run):
    from fastai.learner import load_learner
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # load_learner's pickle warning: these are our own files
        return load_learner(Path(run)/'model.pkl').model.state_dict()

def assert_finished_like(out, straight, keys):
    "`out`, finished by a resume, holds what the uninterrupted run `straight` holds: the same files, history, `keys` of metrics.json and weights"
    assert {f.name for f in straight.iterdir()} == {f.name for f in out.iterdir()}  # the same artefacts
    pd.testing.assert_frame_equal(hist(out), hist(straight))
    m, s = json.loads((out/'metrics.json').read_text()), json.loads((straight/'metrics.json').read_text())
    assert [m[k] for k in keys] == [s[k] for k in keys]
    wa, wb = weights(out), weights(straight)  # model.pkl loads, with the same weights
    assert all(torch.equal(wa[k], wb[k]) for k in wa)

_straight = {}
def straight_run(syn, tmp_path_factory, precision):
    "An uninterrupted run of the tiny recipe in `precision`, made once per module"
    if precision not in _straight:
        out = tmp_path_factory.mktemp('straight')/'run'
        r = cli('--data', syn, *ARGS, '--precision', precision, '--out', out)
        assert r.returncode == 0, r.stderr
        assert json.loads((out/'metrics.json').read_text())['precision'] == precision
        _straight[precision] = out
    return _straight[precision]

@pytest.fixture(scope='module', params=['fp32', 'bf16'])
def straight2(syn, tmp_path_factory, request):
    """(data, the uninterrupted run) in fp32 and in bf16, for the bit-identical resume test. bf16 only where the CPU computes it natively,
    as `--precision auto` uses it only there: emulated, each batch takes seconds (5 s on a Zen 3 here), and this test cost CI 4 minutes.
    Its run trains on 4 classes, 4 batches an epoch: enough for a kill in mid-epoch 2"""
    if request.param == 'fp32': return syn, straight_run(syn, tmp_path_factory, 'fp32')
    from cifar_fastai.learner import cpu_bf16_native
    if not cpu_bf16_native(): pytest.skip("bf16 resume: this CPU has no native bf16 (the fp32 case runs; --precision auto never picks bf16 here)")
    from cifar_fastai.testing import make_synthetic_cifar
    small = make_synthetic_cifar(tmp_path_factory.mktemp('data4')/'syn4', n_train=8, n_test=4, n_classes=4)
    return small, straight_run(small, tmp_path_factory, 'bf16')

@pytest.fixture(scope='module')
def straight(syn, tmp_path_factory):
    "The uninterrupted run in fp32, for the other comparisons (the precision does not change what they check)"
    return straight_run(syn, tmp_path_factory, 'fp32')

def prec(run): return json.loads((Path(run)/'metrics.json').read_text())['precision']

def test_same_command_twice_same_metrics(syn, straight, tmp_path):
    r = cli('--data', syn, *ARGS, '--precision', prec(straight), '--out', tmp_path/'again')
    assert r.returncode == 0, r.stderr
    pd.testing.assert_frame_equal(hist(tmp_path/'again'), hist(straight))
    a, b = json.loads((tmp_path/'again/metrics.json').read_text()), json.loads((straight/'metrics.json').read_text())
    assert a['test_accuracy'] == b['test_accuracy'] and a['test_loss'] == b['test_loss']

def test_sigkill_mid_epoch_2_then_resume_is_bit_identical(straight2, tmp_path):
    syn, straight2 = straight2
    out = tmp_path/'killed'
    code = f"""
import os, signal
from fastai.callback.core import Callback
from cifar_fastai.train import train
class Kill(Callback):
    def after_batch(self):
        if self.epoch==1 and self.iter==2: os.kill(os.getpid(), signal.SIGKILL)  # 3rd batch of epoch 2 (of 10 in fp32, of 4 in bf16)
train({str(syn)!r}, epochs=3, bs=8, lr_max=1e-3, seed=0, out={str(out)!r}, bar=False, cbs=Kill(), precision={prec(straight2)!r})
"""
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=600)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert not (out/'metrics.json').exists() and len(hist(out)) == 1  # epoch 1 saved, epoch 2 lost
    r = cli('--data', syn, *ARGS, '--precision', prec(straight2), '--resume', out)
    assert r.returncode == 0, r.stderr
    assert 'resuming after epoch 1/3' in r.stdout
    pd.testing.assert_frame_equal(hist(out), hist(straight2))
    m, s = json.loads((out/'metrics.json').read_text()), json.loads((straight2/'metrics.json').read_text())
    assert m['resumed_after'] == 1
    assert [m[k] for k in ('test_accuracy','test_loss','train_loss','train_accuracy')] == [s[k] for k in ('test_accuracy','test_loss','train_loss','train_accuracy')]
    wa, wb = weights(out), weights(straight2)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)  # bit-identical on the CPU

DRIVE = """
import os, sys, signal
import cifar_fastai.train as t
from fastai.callback.core import Callback
class CtrlC(Callback):
    "A real SIGINT to this process at the 2nd batch of epoch 2, whatever the machine's load: the run cannot finish first"
    def after_batch(self):
        if self.epoch==1 and self.iter==1: os.kill(os.getpid(), signal.SIGINT)
_fit = t._fit
t._fit = lambda r, cbs=None: _fit(r, [CtrlC()]+list(cbs or []))
sys.argv = [t.__file__, *sys.argv[1:]]  # as `python -m cifar_fastai.train ...` sees it: the resume line is that command
t.main()
"""

def test_ctrl_c_saves_and_says_how_to_resume(syn, straight, tmp_path):
    "Ctrl-C in epoch 2 of the command line: exit 130, no traceback, and the command it prints resumes to the uninterrupted result"
    out, drive = tmp_path/'ctrlc', tmp_path/'drive.py'
    drive.write_text(DRIVE)  # a file, not `-c`: fastcore's `call_parse` parses sys.argv only for a real __main__ module
    p = subprocess.run([sys.executable, str(drive), '--data', str(syn), *map(str, ARGS), '--precision', prec(straight), '--out', str(out)],
                       capture_output=True, text=True, timeout=600, preexec_fn=sigint_default)
    so, se = p.stdout, p.stderr
    assert p.returncode == 130, se
    assert 'Traceback' not in se
    last = so.strip().splitlines()[-1]
    assert last.startswith('interrupted in epoch 2/3') and f'--resume {out}' in last and last.split('resume with: ')[1].startswith('python -m cifar_fastai.train '), so
    assert len(hist(out)) == 1  # epoch 1 saved
    cmd = last.split('resume with: ')[1].split()
    r = subprocess.run([sys.executable, *cmd[1:]], capture_output=True, text=True, timeout=600)  # the command it printed, as given
    assert r.returncode == 0, r.stderr
    pd.testing.assert_frame_equal(hist(out), hist(straight))

def test_disk_full_while_checkpointing_keeps_the_previous_one(syn, tmp_path, monkeypatch):
    from cifar_fastai.train import train
    from cifar_fastai.callbacks import load_checkpoint
    from cifar_fastai.core import CifarError
    real_save, calls = torch.save, []
    def full_disk(obj, f, *a, **k):
        calls.append(f)
        if isinstance(obj, dict) and obj.get('epoch') == 2:
            Path(f).write_bytes(b'half a checkpoint'); raise OSError(errno.ENOSPC, 'No space left on device')
        return real_save(obj, f, *a, **k)
    monkeypatch.setattr(torch, 'save', full_disk)
    with pytest.raises(CifarError, match='cannot write .*checkpoint.pth: No space left on device'):
        train(syn, epochs=3, bs=8, lr_max=1e-3, seed=0, out=tmp_path/'full', bar=False)
    monkeypatch.setattr(torch, 'save', real_save)
    assert load_checkpoint(tmp_path/'full/checkpoint.pth')['epoch'] == 1  # the epoch-1 checkpoint is intact
    assert [f.name for f in (tmp_path/'full').iterdir() if f.name.startswith('.')] == []  # no temp file left
    learn, m = train(syn, epochs=3, bs=8, lr_max=1e-3, seed=0, bar=False, resume=tmp_path/'full')
    assert m['resumed_after'] == 1 and (tmp_path/'full/model.pkl').exists()

def test_resume_refusals_one_line_exit_2(syn, tmp_path):
    run = tmp_path/'run'; run.mkdir()
    torch.save({'weights': {}}, run/'checkpoint.pth')
    r = cli('--data', syn, *ARGS, '--resume', run)
    assert r.returncode == 2 and 'another model' in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    (run/'checkpoint.pth').write_bytes(b'\x00garbage')
    r = cli('--data', syn, *ARGS, '--resume', run)
    assert r.returncode == 2 and 'not a readable cifar_fastai checkpoint' in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = cli('--data', syn, *ARGS, '--resume', tmp_path/'nothing')
    assert r.returncode == 2 and 'nothing to resume' in r.stderr, r.stderr

def test_resume_with_other_hyperparameters_needs_force(syn, tmp_path):
    from cifar_fastai.train import train
    with pytest.raises(KeyboardInterrupt): train(syn, epochs=2, bs=8, lr_max=1e-3, seed=0, out=tmp_path/'r', bar=False, cbs=CtrlCInEpoch2())
    r = cli('--data', syn, '--epochs', 2, '--bs', 8, '--lr_max', 2e-3, '--seed', 0, '--resume', tmp_path/'r')
    assert r.returncode == 2 and 'lr_max=0.001 (now 0.002)' in r.stderr and '--force' in r.stderr, r.stderr
    r = cli('--data', syn, '--epochs', 2, '--bs', 8, '--lr_max', 2e-3, '--seed', 0, '--resume', tmp_path/'r', '--force')
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path/'r/metrics.json').read_text())['lr_max'] == 2e-3

def test_killed_after_the_last_checkpoint_resume_finishes_the_run(syn, straight, tmp_path):
    "Killed after the last epoch's checkpoint, before the report: --resume trains nothing and writes what an uninterrupted run writes"
    out = tmp_path/'late'
    code = f"""
import os, signal
from fastai.callback.core import Callback
from cifar_fastai.train import train
from cifar_fastai.callbacks import Checkpoint
class Kill(Callback):
    order = Checkpoint.order+1  # the epoch's checkpoint is written
    def after_epoch(self):
        if self.epoch==2: os.kill(os.getpid(), signal.SIGKILL)
train({str(syn)!r}, epochs=3, bs=8, lr_max=1e-3, seed=0, out={str(out)!r}, bar=False, cbs=Kill(), precision={prec(straight)!r})
"""
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=600)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert not (out/'metrics.json').exists() and not (out/'model.pkl').exists() and len(hist(out)) == 3
    r = cli('--data', syn, *ARGS, '--precision', prec(straight), '--resume', out)
    assert r.returncode == 0, r.stderr
    assert 'all 3 epochs were trained' in r.stdout and 'epoch 1/3' not in r.stdout  # nothing retrained
    assert_finished_like(out, straight, ('test_accuracy','test_loss','train_loss','epochs'))

def test_resume_refuses_a_change_of_precision(tmp_path):
    from cifar_fastai.train import train
    from cifar_fastai.testing import make_synthetic_cifar
    syn = make_synthetic_cifar(tmp_path/'syn', n_train=4, n_test=2, n_classes=2)  # one batch an epoch: bf16 is emulated on a CPU without it, and slow
    with pytest.raises(KeyboardInterrupt): train(syn, epochs=2, bs=8, lr_max=1e-3, seed=0, out=tmp_path/'r', bar=False, cbs=CtrlCInEpoch2(), precision='bf16')
    r = cli('--data', syn, '--epochs', 2, '--bs', 8, '--lr_max', 1e-3, '--seed', 0, '--precision', 'fp32', '--resume', tmp_path/'r')
    assert r.returncode == 2 and 'precision=bf16 (now fp32)' in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = cli('--data', syn, '--epochs', 2, '--bs', 8, '--lr_max', 1e-3, '--seed', 0, '--precision', 'fp32', '--resume', tmp_path/'r', '--force')
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path/'r/metrics.json').read_text())['precision'] == 'fp32'

def test_fp16_grad_scaler_state_is_checkpointed_and_restored(tmp_path):
    "fp16 runs on the CPU too (autocast + GradScaler('cpu')): the loss scale survives a resume instead of restarting at 2**16"
    from cifar_fastai.train import train
    from cifar_fastai.callbacks import load_checkpoint, Checkpoint
    from cifar_fastai.testing import make_synthetic_cifar
    syn = make_synthetic_cifar(tmp_path/'syn', n_train=4, n_test=2, n_classes=2)  # one batch an epoch: fp16 is emulated on a CPU, and slow
    with pytest.raises(KeyboardInterrupt): train(syn, epochs=2, bs=8, lr_max=1e-3, seed=0, out=tmp_path/'r', bar=False, cbs=CtrlCInEpoch2(), precision='fp16')
    st = load_checkpoint(tmp_path/'r/checkpoint.pth')
    assert st['scaler'] is not None and st['scaler']['scale'] > 0
    st['scaler']['scale'], st['scaler']['_growth_tracker'] = 1024., 7  # a scale the run could not start from
    torch.save(st, tmp_path/'r/checkpoint.pth')
    seen = []
    class Look(Callback):
        order = Checkpoint.order+1  # after the checkpoint restored it
        def before_fit(self): seen.append((self.learn.scaler.get_scale(), self.learn.scaler._get_growth_tracker()))
    train(syn, epochs=2, bs=8, lr_max=1e-3, seed=0, bar=False, resume=tmp_path/'r', precision='fp16', cbs=Look())
    assert seen == [(1024., 7)]

def test_killed_while_writing_the_report_resume_finishes_the_run(syn, straight, tmp_path):
    "SIGKILL once curves.png exists and before metrics.json does: --resume writes everything an uninterrupted run writes"
    out = tmp_path/'report'
    # a thread kills the process the moment curves.png appears: it knows nothing of how train is organised
    code = f"""
import os, signal, threading, time
from pathlib import Path
from cifar_fastai.train import train
def watch(fn=Path({str(out)!r})/'curves.png'):
    while not fn.exists(): time.sleep(0.001)
    os.kill(os.getpid(), signal.SIGKILL)
threading.Thread(target=watch, daemon=True).start()
train({str(syn)!r}, epochs=3, bs=8, lr_max=1e-3, seed=0, out={str(out)!r}, bar=False, precision={prec(straight)!r})
"""
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=600)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert (out/'curves.png').exists() and not (out/'metrics.json').exists() and not (out/'model.pkl').exists()
    r = cli('--data', syn, *ARGS, '--precision', prec(straight), '--resume', out)
    assert r.returncode == 0, r.stderr
    assert 'epoch 1/3' not in r.stdout  # nothing retrained
    assert_finished_like(out, straight, ('test_accuracy','test_loss','train_loss','test_accuracy_flip_tta'))
