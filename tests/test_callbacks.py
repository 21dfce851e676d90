"A run is callbacks: any fit with `run_cbs` leaves what `train` leaves, with the same numbers; `Checkpoint` works under any fit method."
import json, warnings, pytest, torch
import pandas as pd
from pathlib import Path

@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    "3-class synthetic data: 3 batches of 8 per epoch"
    from cifar_fastai.testing import make_synthetic_cifar
    return make_synthetic_cifar(tmp_path_factory.mktemp('data')/'syn', n_train=8, n_test=4, n_classes=3)

def nb_learner(src, seed=0):
    "A learner made as in a notebook: fastai's `set_seed`, `cifar_dls`, `cifar_learner`"
    from fastai.vision.all import set_seed
    from cifar_fastai.data import cifar_dls
    from cifar_fastai.learner import cifar_learner
    set_seed(seed)
    return cifar_learner(cifar_dls(src, bs=8, seed=seed, device='cpu'), precision='fp32')

def load(fn):
    from fastai.learner import load_learner
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # load_learner's pickle warning: our own files
        return load_learner(fn)

def test_notebook_fit_one_cycle_with_run_cbs_writes_what_train_writes(tiny, tmp_path):
    from cifar_fastai.core import PCT_START
    from cifar_fastai.train import train, run_cbs
    from cifar_fastai.callbacks import Checkpoint, RunLog
    _, mt = train(tiny, epochs=3, bs=8, lr_max=1e-3, seed=0, out=tmp_path/'train', bar=False, precision='fp32')
    learn = nb_learner(tiny)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(3, 1e-3, pct_start=PCT_START, cbs=run_cbs(tmp_path/'nb', echo=False))
    a, b = tmp_path/'train', tmp_path/'nb'
    assert sorted(f.name for f in a.iterdir()) == sorted(f.name for f in b.iterdir())  # the same artefacts
    assert {'history.csv','metrics.json','report.md','model.pkl','curves.png','gradcam.png','per_class.csv','train.log'} <= {f.name for f in b.iterdir()}
    assert not (b/'checkpoint.pth').exists()
    pd.testing.assert_frame_equal(pd.read_csv(a/'history.csv').drop(columns='time'), pd.read_csv(b/'history.csv').drop(columns='time'))
    pd.testing.assert_frame_equal(pd.read_csv(a/'per_class.csv'), pd.read_csv(b/'per_class.csv'))
    ma, mb = (json.loads((d/'metrics.json').read_text()) for d in (a, b))
    assert list(ma) == list(mt) == list(mb) and ma['test_accuracy'] == mt['test_accuracy']  # every key of train's metrics.json, in its order
    for k in ('test_accuracy','best_test_accuracy','best_epoch','test_loss','train_loss','train_accuracy','test_accuracy_flip_tta','epochs','bs','n_train','classes','precision'):
        assert ma[k] == mb[k], k
    assert mb['lr_max'] == pytest.approx(1e-3, rel=1e-2) and mb['lr_max_from'] == 'given' and mb['args'] is None  # read from the fit: its highest LR
    wa, wb = load(a/'model.pkl'), load(b/'model.pkl')
    assert all(torch.equal(x, y) for x,y in zip(wa.model.state_dict().values(), wb.model.state_dict().values()))  # bit-identical weights
    assert not wb.cbs.filter(lambda cb: isinstance(cb, (Checkpoint, RunLog))) and 'param_scheduler' not in wb.cbs.attrgot('name')  # the fit's callbacks are not exported
    log = (b/'train.log').read_text()
    assert 'epoch 3/3 ' in log and f"test accuracy {mb['test_accuracy']:.2%} after 3 epochs" in log

def test_checkpoint_under_plain_fit_and_fit_flat_cos(tiny, tmp_path):
    "`Checkpoint` reads the hyper-parameters from the optimizer: a plain `fit` (no ParamScheduler) is checkpointed, and `fit_flat_cos`'s schedule is the scheduler's"
    from cifar_fastai.callbacks import Checkpoint, load_checkpoint
    learn = nb_learner(tiny); (tmp_path/'plain').mkdir()
    with learn.no_bar(), learn.no_logging(): learn.fit(2, 2e-3, cbs=Checkpoint(tmp_path/'plain', meta=dict(k=1)))
    st = load_checkpoint(tmp_path/'plain/checkpoint.pth')
    assert st['epoch'] == 2 and st['meta'] == dict(k=1) and len(st['history']['values']) == 2 and len(pd.read_csv(tmp_path/'plain/history.csv')) == 2
    assert st['history']['hps']['lr'] == [2e-3]*6 and st['history']['hps']['mom'] == [0.9]*6  # 2 epochs of 3 batches, constant
    assert all(torch.equal(v, learn.model.state_dict()[k]) for k,v in st['model'].items())
    from cifar_fastai.train import train
    from cifar_fastai.core import CifarError
    with pytest.raises(CifarError, match='written by a fit outside `train`'): train(tiny, epochs=2, bs=8, lr_max=2e-3, bar=False, resume=tmp_path/'plain')
    learn = nb_learner(tiny); (tmp_path/'flat').mkdir()
    with learn.no_bar(), learn.no_logging(): learn.fit_flat_cos(2, 2e-3, cbs=Checkpoint(tmp_path/'flat'))
    h = load_checkpoint(tmp_path/'flat/checkpoint.pth')['history']['hps']
    assert h['lr'] == [float(x) for x in learn.recorder.hps['lr']] and h['lr'][-1] < h['lr'][0]  # the scheduler's LRs, annealed at the end

def test_run_cbs_under_plain_fit_writes_the_report(tiny, tmp_path):
    from cifar_fastai.train import run_cbs
    learn = nb_learner(tiny)
    with learn.no_bar(), learn.no_logging(): learn.fit(2, 1e-3, cbs=run_cbs(tmp_path/'r', echo=False))
    m = json.loads((tmp_path/'r/metrics.json').read_text())
    assert m['epochs'] == 2 and m['lr_max'] == pytest.approx(1e-3) and m['pct_start'] == 0.  # constant LR: the highest is the first
    assert len(pd.read_csv(tmp_path/'r/history.csv')) == 2 and (tmp_path/'r/model.pkl').exists() and not (tmp_path/'r/checkpoint.pth').exists()
    assert learn.recorder.hps['lr'] == [1e-3]*6  # for fastai's `plot_sched`, which a plain fit has no data for
