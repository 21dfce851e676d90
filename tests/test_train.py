"`train()` from code: the schedule it runs and what it returns."
import numpy as np, pytest
from cifar_fastai.train import train
from cifar_fastai.data import make_synthetic_cifar

def test_train_schedule_peaks_at_end_of_epoch_5(tmp_path):
    "The mission's schedule: fit_one_cycle(24, lr_max, pct_start=5/24) with Adam, peak LR at the end of epoch 5"
    src = make_synthetic_cifar(tmp_path/'syn', n_train=8, n_test=2, n_classes=2)  # 16 images: 2 batches of 8 per epoch
    learn, m = train(src, epochs=24, bs=8, lr_max=2e-3, out=tmp_path/'run', bar=False, seed=0)
    n = len(learn.dls.train); assert n == 2
    lrs, moms = np.array(learn.recorder.hps['lr']), np.array(learn.recorder.hps['mom'])
    assert len(lrs) == 24*n
    assert lrs.argmax() == 5*n  # first step after epoch 5
    assert lrs.max() == pytest.approx(2e-3) and lrs[0] == pytest.approx(2e-3/25)
    assert (np.diff(lrs[:5*n+1]) > 0).all() and (np.diff(lrs[5*n:]) < 0).all()
    assert moms[5*n] == pytest.approx(0.85) and moms[0] == pytest.approx(0.95)
    assert learn.opt_func.__name__ == 'Adam' and learn.opt.hypers[0]['eps'] == 1e-5
    assert m['epochs'] == 24 and m['pct_start'] == pytest.approx(5/24)
