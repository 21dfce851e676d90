"Importing the package changes nothing in the user's process, and our modules see our names"
import sys, subprocess

def run(code):
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout

def test_import_adds_no_warnings_filter():
    out = run("""
import warnings
with warnings.catch_warnings(): import fastai.vision.all  # fastai's own import, before ours
n = list(warnings.filters)
import cifar_fastai.core, cifar_fastai.testing, cifar_fastai.augment, cifar_fastai.source, cifar_fastai.cache, cifar_fastai.data, cifar_fastai.model, cifar_fastai.callbacks, cifar_fastai.learner, cifar_fastai.interpret, cifar_fastai.train, cifar_fastai.predict
print(warnings.filters == n)
""")
    assert out.strip() == 'True'

def test_our_names_shadow_no_fastai_name_and_old_pickles_load():
    "Issue 22: our residual block is `CifarResBlock`; modules that import fastai's names then ours see fastai's `ResBlock`; an old pickle of `cifar_fastai.model.ResBlock` loads"
    out = run("""
import pickle, fastai.layers, cifar_fastai.model as M
import cifar_fastai.learner, cifar_fastai.interpret, cifar_fastai.predict as p
mods = (cifar_fastai.learner, cifar_fastai.interpret, p)
print(all(m.ResBlock is fastai.layers.ResBlock for m in mods), all(m.CifarResBlock is M.CifarResBlock for m in mods))
import json; print(p.dumps is json.dumps)
old = pickle.dumps(M.CifarResNet(3, widths=(4,8,8,8)), protocol=2).replace(b'\\nCifarResBlock\\n', b'\\nResBlock\\n')  # as a model.pkl of before the rename
print(b'cifar_fastai.model\\nResBlock\\n' in old, type(pickle.loads(old).layer1[1]).__name__)
""")
    names, same, (has_old, loaded) = *out.strip().splitlines()[:2], out.strip().splitlines()[2].split()
    assert names == 'True True' and same == 'True', out
    assert has_old == 'True' and loaded == 'CifarResBlock', out

def test_names_that_moved_out_of_data_still_import_from_it():
    "`core`, `source`, `cache` and `testing` came out of `data`: users' imports and old pickles (`cifar_fastai.data.CacheImage`) still find them there"
    out = run("""
import pickle
from cifar_fastai.data import CifarError, run_cli, EPOCHS, cifar_source, check_layout, cifar_cache, CacheImage, CacheDL, make_synthetic_cifar, Cutout
import cifar_fastai.core, cifar_fastai.cache, cifar_fastai.augment
print(pickle.loads(b'ccifar_fastai.data\\nCacheImage\\n.') is cifar_fastai.cache.CacheImage, pickle.loads(b'ccifar_fastai.data\\nCutout\\n.') is cifar_fastai.augment.Cutout,
      CifarError is cifar_fastai.core.CifarError)
""")
    assert out.split() == ['True', 'True', 'True'], out
