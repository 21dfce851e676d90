import os, sys, signal, subprocess, pytest
from pathlib import Path

@pytest.fixture(scope='session')
def syn(tmp_path_factory):
    "A learnable 10-class synthetic CIFAR in fastai's layout: 8 train and 4 test images per class"
    from cifar_fastai.testing import make_synthetic_cifar
    return make_synthetic_cifar(tmp_path_factory.mktemp('data')/'syn', n_train=8, n_test=4)

def cli(*args, module='cifar_fastai.train', cwd=None, env=None):
    "Run the command line in a subprocess, as a user would: `python -m module args`; with `module=None`, `python args` (a script and its arguments)"
    e = {**os.environ, **(env or {})}
    e.pop('CIFAR_FASTAI_DATA', None)
    return subprocess.run([sys.executable, *(['-m', module] if module else []), *map(str, args)], capture_output=True, text=True, cwd=cwd, env=e, timeout=600)

def tiny_run(dest):
    "A 3-class colour model trained by `train` as a user would, in `dest`: (learner, its model.pkl, the data folder)"
    from cifar_fastai.train import train
    from cifar_fastai.testing import make_synthetic_cifar
    src = make_synthetic_cifar(dest/'syn', n_train=8, n_test=4, n_classes=3)
    learn, m = train(src, epochs=6, bs=8, lr_max=3e-3, out=dest/'run', seed=0, bar=False)  # 6, not 3: after 3 epochs the test accuracy of this tiny model depends on the CPU's kernels (1.0 on a Zen 4 in bf16, 0.67 on a Zen 3 in fp32)
    assert m['test_accuracy'] > 0.9, m
    return learn, dest/'run/model.pkl', src

def sigint_default():
    "`preexec_fn` for a child that a test interrupts with SIGINT: a shell starting pytest in the background (`cmd &`) passes SIGINT on as ignored, and Python then never raises KeyboardInterrupt"
    signal.signal(signal.SIGINT, signal.SIG_DFL)
