"Issue 20's five failing inputs, and issue 21's pixel limit: every path reads an image the same way, bad data fails before a run folder exists, a diverged run is no success."
import os, sys, json, shutil, subprocess, warnings, pytest, torch
import numpy as np
from pathlib import Path
from PIL import Image
from conftest import cli
from cifar_fastai.testing import make_synthetic_cifar, MODES, save_in_mode
from cifar_fastai.source import open_image
from cifar_fastai.cache import cifar_cache
from cifar_fastai.data import cifar_dls
from cifar_fastai.learner import cifar_learner
from cifar_fastai.predict import cifar_image
from fastai.vision.all import image2tensor, load_learner, get_image_files, set_seed, Normalize

def _load(fn):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # load_learner's pickle warning: our own files
        return load_learner(fn)

def in_modes(dest, modes=MODES, **kw):
    "A synthetic set whose i-th image of every class and split is saved in `modes[i]`"
    src = make_synthetic_cifar(dest, n_train=len(modes), n_test=len(modes), **kw)
    for f in sorted(get_image_files(src)):
        a = np.array(Image.open(f)); f.unlink()
        save_in_mode(a, f.with_suffix(''), modes[int(f.stem)])
    return src

@pytest.fixture(scope='module')
def modes(tmp_path_factory):
    "Two classes, each mode once per class and split, and a model trained one epoch on them (the cache path)"
    d = tmp_path_factory.mktemp('modes')
    src = in_modes(d/'data', n_classes=2)
    from cifar_fastai.train import train
    train(src, epochs=1, bs=8, lr_max=3e-3, seed=0, out=d/'run', bar=False, precision='fp32')
    return src, d/'run/model.pkl'

def test_every_mode_reads_the_same_on_every_path(modes, tmp_path):
    "The cache, the per-image pipeline, predict/the app and both exported learners see the same pixels for every mode"
    src, pkl = modes
    c = cifar_cache(src, fn=tmp_path/'c.pt')
    dp = cifar_dls(src, bs=2, pil=True, device='cpu', pad=0, flip=False)
    set_seed(0); pil_pkl = tmp_path/'pil.pkl'; cifar_learner(dp, precision='fp32').export(pil_pkl)
    import cifar_fastai.app as app, cifar_fastai.predict as pred
    assert app.cifar_image is pred.cifar_image  # the app reads uploads with predict's function
    norm = next(t for t in dp.after_batch.fs if isinstance(t, Normalize))
    mean, std = norm.mean.cpu().view(1,3,1,1), norm.std.cpu().view(1,3,1,1)
    learners = [_load(pkl), _load(pil_pkl)]  # trained on the cache / on the per-image pipeline
    for i,f in enumerate(c.files):
        want = c.x[i]  # (3,32,32) uint8, from the cache
        ds = dp.train_ds if f in dp.train_ds.items else dp.valid_ds
        assert torch.equal(image2tensor(ds[ds.items.index(f)][0]), want), f  # the per-image pipeline's type transform
        assert torch.equal(image2tensor(cifar_image(f)), want), f  # predict and the app
        for l in learners:  # `load_learner(...).predict(file)` goes through this
            x = l.dls.test_dl([f]).one_batch()[0]
            assert torch.allclose(x.cpu().as_subclass(torch.Tensor), (want[None].float()/255-mean)/std, atol=1e-6), (f, l)

def test_load_learner_predict_equals_cli_predict(modes):
    "Input 2: `load_learner('model.pkl').predict(f)` and `python -m cifar_fastai.predict` give the same probabilities for every mode"
    src, pkl = modes
    files = sorted(get_image_files(src/'test'))
    assert len(files) == 2*len(MODES)
    r = cli(pkl, *files, '--json', '--precision', 'fp32', module='cifar_fastai.predict')
    assert r.returncode == 0, r.stderr
    out, learn = json.loads(r.stdout), _load(pkl)
    vocab = list(learn.dls.vocab)
    for o,f in zip(out, files):
        probs = learn.predict(f)[2]
        for t in o['top']: assert abs(t['prob'] - float(probs[vocab.index(t['class'])])) < 1e-5, (f, o, probs)

def test_16bit_training_data_reads_as_8bit(tmp_path):
    "Input 1: a dataset in 16-bit grey (value × 257) gives the cache and the per-image pipeline the 8-bit greys, not 255 everywhere"
    src8 = make_synthetic_cifar(tmp_path/'d8', n_train=2, n_test=1, n_classes=2)
    src16 = shutil.copytree(src8, tmp_path/'d16')
    for f in get_image_files(src16):
        g = np.array(Image.open(f).convert('L')); f.unlink(); Image.fromarray(g.astype(np.uint16)*257).save(f)
        assert Image.open(f).mode == 'I;16'
    c = cifar_cache(src16)
    want = torch.stack([image2tensor(Image.open(src8/f.relative_to(src16)).convert('L').convert('RGB')) for f in c.files])
    assert c.x.float().mean() < 200 and torch.equal(c.x, want)
    dp = cifar_dls(src16, bs=2, pil=True, device='cpu', pad=0, flip=False)
    assert torch.equal(image2tensor(dp.train_ds[0][0]), c.x[c.files.index(dp.train_ds.items[0])])

@pytest.mark.parametrize('pil', [False, True])
def test_empty_train_class_with_test_images_fails_first(syn, tmp_path, pil):
    "Input 3: a class empty in train/ but with test images: one line, exit 2, no run folder (cache and --pil alike)"
    data = shutil.copytree(syn, tmp_path/'data')
    for f in (data/'train/cat').iterdir(): f.unlink()
    r = cli('--data', data, '--epochs', 1, '--bs', 4, '--lr_max', 1e-3, '--out', tmp_path/'run', *(['--pil'] if pil else []))
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and 'in test/ but not in train/: cat' in r.stderr, r.stderr
    assert not (tmp_path/'run').exists()

def test_truncated_jpeg_under_pil_fails_first(tmp_path):
    "Input 4: a JPEG with its header intact and its tail cut, under --pil: one line, exit 2, no run folder"
    data = make_synthetic_cifar(tmp_path/'data', n_train=4, n_test=2, n_classes=2, ext='jpg')
    f = data/'train/airplane/0001.jpg'
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32,32,3), dtype=np.uint8)).save(f, quality=95)
    f.write_bytes(f.read_bytes()[:-400])
    with Image.open(f) as im: im.size  # the header still reads
    r = cli('--data', data, '--epochs', 1, '--bs', 4, '--lr_max', 1e-3, '--out', tmp_path/'run', '--pil')
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and 'unreadable image' in r.stderr and '0001.jpg' in r.stderr, r.stderr
    assert not (tmp_path/'run').exists()

def test_diverged_run_is_no_success(syn, tmp_path):
    "Input 5: --lr_max 1e4 stops at the first nan loss with one line naming epoch and batch, exit 2; no model.pkl, only good checkpoints"
    out = tmp_path/'run'
    r = cli('--data', syn, '--epochs', 3, '--bs', 8, '--lr_max', 1e4, '--seed', 0, '--out', out, '--precision', 'fp32')
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and 'training diverged' in err[0] and 'in epoch' in err[0] and 'batch' in err[0] and 'lower --lr_max' in err[0], r.stderr
    assert not (out/'model.pkl').exists() and not (out/'metrics.json').exists()
    if (out/'checkpoint.pth').exists():  # the epochs before were good: kept, finite, and resumable with a lower lr_max
        from cifar_fastai.callbacks import load_checkpoint
        st = load_checkpoint(out/'checkpoint.pth')
        assert all(v.isfinite().all() for v in st['model'].values() if v.is_floating_point())
        assert f'--resume {out}' in err[0]
        r = cli('--data', syn, '--epochs', 3, '--bs', 8, '--lr_max', 1e-3, '--seed', 0, '--precision', 'fp32', '--resume', out, '--force')
        assert r.returncode == 0, r.stderr
        assert json.loads((out/'metrics.json').read_text())['resumed_after'] == st['epoch']

def test_nan_model_refused_and_json_valid(modes, tmp_path):
    "A model with nan weights (as diverged runs used to export): predict says so in one line, exit 2, never prints a bare NaN"
    learn = _load(modes[1]); learn.model.prep[0].weight.data.fill_(float('nan')); learn.export(tmp_path/'nan.pkl')
    r = cli(tmp_path/'nan.pkl', get_image_files(modes[0]/'test')[0], '--json', module='cifar_fastai.predict')
    assert r.returncode == 2 and 'non-finite weights' in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert 'NaN' not in r.stdout

HUGE = 12000  # 144 megapixels

def test_pixel_limit_in_predict(modes, tmp_path):
    "Issue 21: a 144-megapixel PNG of a few hundred kB is refused in one line (exit 2); --max_pixels sets the limit"
    Image.new('L', (HUGE, HUGE), 128).save(tmp_path/'huge.png')
    assert (tmp_path/'huge.png').stat().st_size < 1_000_000
    r = cli(modes[1], tmp_path/'huge.png', module='cifar_fastai.predict')
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == f"cifar_fastai: error: {tmp_path/'huge.png'} is 12000×12000 = 144.0 megapixels, more than the limit of 40 (--max_pixels): shrink it first"
    small = get_image_files(modes[0]/'test')[0]
    r = cli(modes[1], small, '--max_pixels', 100, module='cifar_fastai.predict')  # the option reaches the reader
    assert r.returncode == 2 and 'more than the limit of 0.0001' in r.stderr, r.stderr

MEASURE = """
import sys, json
from PIL import Image
from cifar_fastai.predict import predict
from cifar_fastai.app import CifarDemo
def hwm(): return int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])*1024  # peak RSS, bytes
model, small, huge = sys.argv[1:4]
demo = CifarDemo(model); demo(small); predict(model, [small])  # everything loaded and run once
base = hwm()
r = predict(model, [huge]); d = demo(huge)
print(json.dumps(dict(extra=hwm()-base, base=base, predict=r[0].get('error'), app=d['msg'])))
"""

def test_pixel_limit_costs_no_memory(modes, tmp_path):
    "Issue 21: refusing the 144-megapixel PNG (predict and the app) raises the peak RSS by less than 100 MB (decoding it would take 432 MB as RGB)"
    Image.new('RGB', (HUGE, HUGE), (200, 30, 30)).save(tmp_path/'huge.png')
    small = get_image_files(modes[0]/'test')[0]
    r = subprocess.run([sys.executable, '-c', MEASURE, str(modes[1]), str(small), str(tmp_path/'huge.png')], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"peak RSS {m['base']/2**20:.0f} MiB before, +{m['extra']/2**20:.1f} MiB for the refusals")  # pytest -s shows it
    assert 'more than the limit' in m['predict'] and 'more than the limit' in m['app'], m
    assert m['extra'] < 100*2**20, m

def test_odd_file_names(tmp_path):
    "A file name with a newline, a space and bytes that are not UTF-8 is read by the cache, twice (built, then loaded)"
    src = make_synthetic_cifar(tmp_path/'data', n_train=2, n_test=1, n_classes=2)
    f = src/'train/airplane/0000.png'
    odd = src/'train/airplane'/os.fsdecode(b'odd \n\xff name.png')
    f.rename(odd)
    c = cifar_cache(src)
    assert c.built and odd in c.files
    c2 = cifar_cache(src)
    assert not c2.built and torch.equal(c2.x, c.x) and odd in c2.files
