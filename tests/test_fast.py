"The fast path end to end: its cache is rebuilt exactly when the images change, and its DataLoader augments like the per-image path"
import os, shutil, time, pickle, zipfile
import numpy as np, pytest, torch
from PIL import Image
from fastai.vision.all import cifar_stats, set_seed
from cifar_fastai.core import CifarError
from cifar_fastai.testing import make_synthetic_cifar
from cifar_fastai.cache import cifar_cache, CACHE_NAME
from cifar_fastai.data import cifar_dls
from conftest import cli

@pytest.fixture
def data(tmp_path): return make_synthetic_cifar(tmp_path/'syn', n_train=4, n_test=2, n_classes=3)

def test_cache_reused_until_the_images_change(data):
    c = cifar_cache(data)
    assert c.built and c.fn==data/CACHE_NAME and c.x.shape==(18,3,32,32) and c.x.dtype==torch.uint8
    assert not cifar_cache(data).built
    f = data/'train/bird/0001.png'
    st = f.stat(); os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns+10**9))  # touched: same bytes, new mtime
    assert cifar_cache(data).built
    assert not cifar_cache(data).built
    Image.fromarray(np.full((32,32,3), 7, np.uint8)).save(data/'train/bird/0009.png')  # added
    c = cifar_cache(data)
    assert c.built and len(c)==19 and c.n_train==13
    assert (c.x[c.files.index(data/'train/bird/0009.png')]==7).all()
    (data/'test/airplane/0000.png').unlink()  # removed
    c = cifar_cache(data)
    assert c.built and len(c)==18 and c.n_train==13
    shutil.move(data/'train/bird/0009.png', data/'train/airplane/0009.png')  # relabelled: same bytes, other class
    c = cifar_cache(data)
    assert c.built and c.vocab[c.y[c.files.index(data/'train/airplane/0009.png')]]=='airplane'

def test_broken_or_foreign_cache_file_is_rebuilt(data):
    cifar_cache(data)
    (data/CACHE_NAME).write_bytes((data/CACHE_NAME).read_bytes()[:1000])  # truncated
    assert cifar_cache(data).built
    torch.save(dict(format=999, x=1), data/CACHE_NAME)  # another version's
    assert cifar_cache(data).built
    assert not cifar_cache(data).built

def test_unwritable_cache_place_falls_back_to_fastai_data(data, tmp_path, monkeypatch):
    import cifar_fastai.cache as D
    monkeypatch.setattr(D, 'fastai_path', lambda folder: tmp_path/'home'/folder)  # fastai's data folder
    (data/CACHE_NAME).mkdir()  # cannot be replaced by a file, as in a read-only folder
    c = cifar_cache(data)
    assert c.built and c.fn.parent==tmp_path/'home/data/cifar_fastai_cache'
    assert not cifar_cache(data).built

def test_cache_errors_one_line_exit_2(data, tmp_path):
    (data/'train/bird/0002.png').write_bytes(b'not a png')
    r = cli('--data', data, '--epochs', 1, '--bs', 4, '--lr_max', 1e-3, '--out', tmp_path/'r1')
    assert r.returncode==2 and r.stderr.count('\n')==1 and 'unreadable image' in r.stderr and '0002.png' in r.stderr
    Image.fromarray(np.zeros((40,40,3), np.uint8)).save(data/'train/bird/0002.png')  # another size: read at 32×32, whole, by both paths
    r = cli('--data', data, '--epochs', 1, '--bs', 4, '--lr_max', 1e-3, '--out', tmp_path/'r2')
    assert r.returncode==0, r.stderr
    r = cli('--data', data, '--epochs', 1, '--bs', 4, '--lr_max', 1e-3, '--out', tmp_path/'r3', '--pil')
    assert r.returncode==0, r.stderr
    assert 'per-image PIL pipeline' in (tmp_path/'r3/train.log').read_text()

def coded(dest, n):
    "`n` copies per class (2 classes) of an image whose red is 8×row and green 8×column"
    a = np.zeros((32,32,3), np.uint8); a[...,0], a[...,1] = np.arange(32)[:,None]*8, np.arange(32)[None,:]*8
    for split in ('train','test'):
        for c in ('airplane','automobile'):
            (dest/split/c).mkdir(parents=True)
            for i in range(n if split=='train' else 4): Image.fromarray(a).save(dest/split/c/f'{i}.png')
    return dest, torch.from_numpy(a).permute(2,0,1)

def pixels(xb):
    "Normalised float batch → uint8-valued pixels (Cutout holes, 0 after Normalize, become the mean colour)"
    m, s = torch.tensor(cifar_stats[0])[:,None,None], torch.tensor(cifar_stats[1])[:,None,None]
    return (xb.as_subclass(torch.Tensor)*s + m).mul(255).round()

def test_fast_dataloader_augments_like_the_recipe(tmp_path):
    src, img = coded(tmp_path/'coded', 250)
    set_seed(0)
    dls = cifar_dls(src, bs=100, device='cpu', cutout=0)
    oy, ox, fl = [], [], []
    for _ in range(10):
        for xb,_ in dls.train:
            p = pixels(xb)  # (bs,3,32,32)
            r, g = p[:,0].long()//8, p[:,1].long()//8
            f = g[:,16,17] < g[:,16,16]
            oy.append(r[:,16,16]-12); ox.append(g[:,16,16]-12+f.long()); fl.append(f)
    oy, ox, fl = torch.cat(oy), torch.cat(ox), torch.cat(fl)
    n = len(oy); assert n==5000
    counts = torch.bincount(oy*9+ox, minlength=81).float()
    assert len(counts)==81 and counts.min()>0  # offsets 0..8 in each direction, nothing else
    assert ((counts-n/81)**2/(n/81)).sum() < 124.8  # uniform (chi-square, 80 dof, p=0.001)
    assert abs(fl.float().mean()-0.5) < 4/n**0.5
    xv, _ = dls.valid.one_batch()
    assert (pixels(xv)==img.float()).all()  # the test set: untouched

def test_fast_dataloader_cutout_area(tmp_path):
    src, img = coded(tmp_path/'coded', 250)
    set_seed(0)
    dls = cifar_dls(src, bs=100, device='cpu', cutout=16, pad=0, flip=False)
    areas = torch.cat([(xb==0).all(1).sum((1,2)) for _ in range(8) for xb,_ in dls.train]).float()  # hole pixels per image
    assert len(areas)==4000 and areas.min()>=64 and areas.max()==256
    assert abs(areas.mean()-196) < 3  # the exact mean area of a 16×16 square clipped at the border (see 02_augment)
    assert (dls.valid.one_batch()[0]!=0).all()

def test_fast_dataloader_cutout_8_by_default(tmp_path):
    "Issue 22: the recipe's Cutout(8), as `cifar_dls` applies it by default: one square per image, 64 pixels unless clipped at the border, mean area exact"
    from cifar_fastai.core import CUTOUT
    assert CUTOUT == 8
    src, img = coded(tmp_path/'coded', 250)
    set_seed(0)
    dls = cifar_dls(src, bs=100, device='cpu', pad=0, flip=False)  # cutout: the default
    holes = torch.cat([(xb==0).all(1) for _ in range(8) for xb,_ in dls.train])  # (4000,32,32)
    area, rows, cols = holes.sum((1,2)), holes.any(2).sum(1), holes.any(1).sum(1)
    assert len(area)==4000 and (area==rows*cols).all() and (rows<=8).all() and (cols<=8).all()
    assert area.min()>=16 and area.max()==64  # a 4×4 corner at least: the centre is inside the image
    cover = torch.tensor([sum(1 for c in range(32) if c-4 <= i <= c+3) for i in range(32)]).float()  # centres whose square covers row i
    assert abs(area.float().mean() - (cover.sum()/32)**2) < 1  # 7.5² = 56.25 pixels on average, not 64: the clipping
    assert abs((area==64).float().mean() - (25/32)**2) < 0.03
    assert (dls.valid.one_batch()[0]!=0).all()  # never on the test set

def test_fast_and_per_image_paths_give_the_same_shuffled_batches(data):
    "Without random augmentation, an epoch of the fast path is the per-image path's, batch for batch"
    kw = dict(bs=4, device='cpu', pad=0, flip=False, cutout=0)
    set_seed(1); fast = cifar_dls(data, **kw)
    set_seed(1); per = cifar_dls(data, pil=True, **kw)
    assert fast.train._src() is not None and per.train.__class__.__name__=='TfmdDL'
    for (xf,yf),(xp,yp) in zip(fast.train, per.train, strict=True): assert (xf==xp).all() and (yf==yp).all()
    for (xf,yf),(xp,yp) in zip(fast.valid, per.valid, strict=True): assert (xf==xp).all() and (yf==yp).all()

def test_exported_learner_has_no_pixels_and_predicts_any_size(data, tmp_path):
    from fastai.learner import load_learner
    from cifar_fastai.train import train
    from cifar_fastai.cache import CacheImage
    learn, _ = train(data, epochs=1, bs=4, lr_max=1e-3, out=tmp_path/'run', seed=0, bar=False)
    assert learn.dls.cache.x is not None
    exp = load_learner(tmp_path/'run/model.pkl')
    ci = [f for f in exp.dls.valid.dataset.tls[0].tfms.fs if isinstance(f, CacheImage)]
    assert len(ci)==1 and ci[0].cache.x is None and ci[0].cache.files==[]  # the pixels stayed out of model.pkl
    with zipfile.ZipFile(tmp_path/'run/model.pkl') as z: sizes = [i.file_size for i in z.infolist()]
    assert learn.dls.cache.x.nbytes not in sizes  # not even as a tensor the loaded learner doesn't show
    assert len(pickle.dumps(learn.dls.cache)) < learn.dls.cache.x.nbytes/10
    a = np.random.default_rng(0).integers(0, 256, (40,40,3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path/'big.png'); Image.fromarray(a).resize((32,32), Image.Resampling.LANCZOS).save(tmp_path/'small.png')
    pb, ps = exp.predict(tmp_path/'big.png')[2], exp.predict(tmp_path/'small.png')[2]
    assert torch.allclose(pb, ps)  # a 40×40 image is resized whole to 32×32, as everywhere (`open_image`), not cropped
