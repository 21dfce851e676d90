"""The CUDA path on a real GPU: resume after SIGKILL, determinism, cuDNN autotuning, the cache on the GPU, `--pil`, prediction, Grad-CAM.

Every test here is marked `cuda` and skipped without a GPU (`pytest -m cuda tests/test_cuda.py`; `tools/gpu_check` runs them).
The tiny synthetic data of `conftest.syn` (10 classes, 8 training and 4 test images each) keeps each run to seconds."""
import json, signal, subprocess, sys
from pathlib import Path
import pandas as pd, pytest, torch
from conftest import cli, tiny_run

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here (tools/gpu_check runs these on one)")]

DEV = 'cuda'  # a helper's logic can be tried on the CPU by setting this
ARGS = ['--epochs', 3, '--bs', 8, '--lr_max', 1e-3, '--seed', 0, '--device', DEV]
PROBE = """
import json, torch
from fastai.callback.core import Callback
from cifar_fastai.callbacks import Checkpoint
class Probe(Callback):
    "What a (resumed) run holds when its fit starts, after `Checkpoint` restored the scaler: written to `fn` as JSON"
    order = Checkpoint.order+1
    def __init__(self, fn): self.fn = fn
    def before_fit(self):
        sc = getattr(self.learn, 'scaler', None)
        devs = sorted({str(v.device) for st in self.opt.state.values() for v in st.values() if isinstance(v, torch.Tensor)})
        json.dump(dict(opt_devices=devs, scale=float(sc.get_scale()) if sc is not None and sc.is_enabled() else None,
                       cudnn_benchmark=torch.backends.cudnn.benchmark, cudnn_deterministic=torch.backends.cudnn.deterministic,
                       precision=self.learn.precision), open(self.fn, 'w'))
"""

def hist(run): return pd.read_csv(Path(run)/'history.csv').drop(columns='time')
def metrics(run): return json.loads((Path(run)/'metrics.json').read_text())

def run_train(probe=None, kill_after_epoch=None, **kw):
    "`train(**kw)` in a fresh process, with a `Probe` writing to `probe`, SIGKILLed in the epoch after `kill_after_epoch`"
    code = PROBE + f"""
import os, signal
from cifar_fastai.train import train
class Kill(Callback):
    def after_batch(self):
        if self.epoch=={kill_after_epoch!r} and self.iter==2: os.kill(os.getpid(), signal.SIGKILL)
cbs = [Kill()] + ([Probe({str(probe)!r})] if {probe is not None} else [])
train(**{kw!r}, bar=False, cbs=cbs)
"""
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=600)

_runs = {}
def straight(syn, tmp_path_factory, deterministic:bool):
    "An uninterrupted tiny run on CUDA (fp16), made once per module for each `deterministic`"
    if deterministic not in _runs:
        out = tmp_path_factory.mktemp('straight')/'run'
        r = cli('--data', syn, *ARGS, '--out', out, *(['--deterministic'] if deterministic else []))
        assert r.returncode == 0, r.stderr
        assert metrics(out)['precision'] == 'fp16' and metrics(out)['device'].startswith('cuda')
        _runs[deterministic] = out
    return _runs[deterministic]

def kill_then_resume(syn, out, deterministic:bool, scale:float=None):
    "Kill a run in epoch 2 (epoch 1 saved), optionally set the saved loss scale to `scale`, resume it; what the resumed run held"
    kw = dict(data=str(syn), epochs=3, bs=8, lr_max=1e-3, seed=0, device=DEV, out=str(out), deterministic=deterministic)
    r = run_train(kill_after_epoch=1, **kw)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert len(hist(out)) == 1 and not (out/'metrics.json').exists()
    fn = out/'checkpoint.pth'
    if scale is not None:  # a scale the scaler never starts from: restoring it is then visible
        st = torch.load(fn, weights_only=False); assert st['scaler'] is not None, "fp16 on CUDA saves its grad scaler"
        st['scaler']['scale'] = scale; torch.save(st, fn)
    r = run_train(probe=out.parent/'probe.json', **(kw | dict(resume=str(out), out=None)))
    assert r.returncode == 0, r.stderr
    return json.loads((out.parent/'probe.json').read_text())

def test_cuda_sigkill_then_resume(syn, tmp_path_factory, tmp_path):
    "Finishes; Adam's state on the GPU; the grad scaler's scale restored; metrics close to an uninterrupted run (not bit-reproducible)"
    out = tmp_path/'killed'
    p = kill_then_resume(syn, out, deterministic=False, scale=1024.)
    assert p['opt_devices'] and all(d.startswith('cuda') for d in p['opt_devices']), p
    assert p['scale'] == 1024. and p['precision'] == 'fp16', p
    m, s = metrics(out), metrics(straight(syn, tmp_path_factory, False))
    assert m['resumed_after'] == 1 and len(hist(out)) == 3
    assert abs(m['test_accuracy'] - s['test_accuracy']) <= 0.15, (m['test_accuracy'], s['test_accuracy'])
    assert abs(m['train_loss'] - s['train_loss']) <= 0.25*s['train_loss'] + 0.05, (m['train_loss'], s['train_loss'])

def test_cuda_deterministic_resume_is_bit_identical(syn, tmp_path_factory, tmp_path):
    out = tmp_path/'killed'
    p = kill_then_resume(syn, out, deterministic=True)
    assert p['cudnn_deterministic'] and not p['cudnn_benchmark'], p
    pd.testing.assert_frame_equal(hist(out), hist(straight(syn, tmp_path_factory, True)))

def test_cuda_deterministic_twice_identical(syn, tmp_path_factory, tmp_path):
    r = cli('--data', syn, *ARGS, '--deterministic', '--out', tmp_path/'again')
    assert r.returncode == 0, r.stderr
    s = straight(syn, tmp_path_factory, True)
    pd.testing.assert_frame_equal(hist(tmp_path/'again'), hist(s))
    assert [metrics(tmp_path/'again')[k] for k in ('test_accuracy','test_loss')] == [metrics(s)[k] for k in ('test_accuracy','test_loss')]

def test_cudnn_benchmark_on_by_default(syn, tmp_path):
    r = run_train(probe=tmp_path/'probe.json', data=str(syn), epochs=1, bs=8, lr_max=1e-3, device='cuda', out=str(tmp_path/'run'))
    assert r.returncode == 0, r.stderr
    p = json.loads((tmp_path/'probe.json').read_text())
    assert p['cudnn_benchmark'] and not p['cudnn_deterministic'] and p['precision'] == 'fp16', p

def htod_copies(fn)->int:
    "Host-to-device memory copies that CUDA ran during `fn()`, counted by the profiler"
    from torch.profiler import profile, ProfilerActivity
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof: fn(); torch.cuda.synchronize()
    return sum(e.count for e in prof.key_averages() if 'htod' in e.key.lower().replace(' ', '').replace('-', ''))

def test_cuda_cache_and_order_copied_once(syn):
    "Batches come from the cache on the GPU: the copies of an epoch do not grow with its number of batches"
    from cifar_fastai.data import cifar_dls
    dls = cifar_dls(syn, bs=2, device='cuda', seed=0)  # 40 batches an epoch
    first = htod_copies(lambda: [b for b in dls.train])  # the cache goes to the GPU here, once
    assert first >= 1  # the profiler sees copies at all: the count below is not zero by blindness
    per_epoch = [htod_copies(lambda: [b for b in dls.train]) for _ in range(2)]
    assert all(n < len(dls.train)//4 for n in per_epoch), (per_epoch, len(dls.train))  # a few per epoch (order, labels), not one per batch
    xb, yb = dls.one_batch()
    assert xb.device.type == 'cuda' and yb.device.type == 'cuda'

def test_cuda_pil_trains(syn, tmp_path):
    r = cli('--data', syn, *ARGS, '--pil', '--num_workers', 2, '--out', tmp_path/'pil')
    assert r.returncode == 0, r.stderr
    m = metrics(tmp_path/'pil')
    assert m['data']['pipeline'] == 'pil' and m['device'].startswith('cuda') and len(hist(tmp_path/'pil')) == 3
    assert m['train_loss'] < 5 and m['test_accuracy'] > 0.1  # trained: finite loss, better than chance (1 in 10)

def to_cuda(learn):
    "A loaded learner moved to the GPU, in the precision 'auto' picks there (fp16)"
    learn.dls.to(torch.device('cuda')); learn.model.cuda()
    return learn.to_precision('auto')

@pytest.fixture(scope='module')
def model_pkl(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp('tiny'))

def test_cuda_predict_and_app_same_top_class(model_pkl, tmp_path, monkeypatch):
    import cifar_fastai.predict as P, cifar_fastai.app as A
    _, pkl, src = model_pkl
    imgs = sorted((src/'test').rglob('*.png'))
    cpu = P.predict(pkl, imgs)
    cpu_demo = [A.CifarDemo(pkl)(i)['cls'] for i in imgs[:3]]
    load = P.load_cifar_learner
    monkeypatch.setattr(P, 'load_cifar_learner', lambda *a, **k: to_cuda(load(*a, **k)))
    monkeypatch.setattr(A, 'load_cifar_learner', lambda *a, **k: to_cuda(load(*a, **k)))
    gpu = P.predict(pkl, imgs, gradcam=tmp_path/'cams')
    assert [r['top'][0]['class'] for r in gpu] == [r['top'][0]['class'] for r in cpu]
    assert all(Path(r['gradcam']).exists() for r in gpu)
    demo = A.CifarDemo(pkl)
    assert demo.learn.dls.device.type == 'cuda' and demo.learn.precision == 'fp16'
    assert [demo(i)['cls'] for i in imgs[:3]] == cpu_demo

def test_cuda_gradcam_fp16_equals_fp32(model_pkl):
    from cifar_fastai.predict import load_cifar_learner
    from cifar_fastai.interpret import gradcam
    _, pkl, src = model_pkl
    l16, l32 = to_cuda(load_cifar_learner(pkl)), to_cuda(load_cifar_learner(pkl)).to_precision('fp32')
    assert l16.precision == 'fp16' and l32.precision == 'fp32'
    xb = l16.dls.test_dl(sorted((src/'test').rglob('*.png'))).one_batch()[0]
    with torch.autocast('cuda', dtype=torch.float16): c16 = gradcam(l16, xb)  # as inside an fp16 fit or get_preds
    c32 = gradcam(l32, xb)
    assert c16.shape == c32.shape == (len(xb), 32, 32)
    assert (c32 > 0).any() and torch.allclose(c16, c32, atol=2e-2), (c16-c32).abs().max()
