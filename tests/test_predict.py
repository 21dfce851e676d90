"The prediction command line end to end (in subprocesses) and `interpretation_report`, on a tiny model trained once for this file."
import re, json, pickle, pytest
from pathlib import Path
from PIL import Image
from conftest import cli, tiny_run
from cifar_fastai.core import CifarError

PNG = b'\x89PNG'

@pytest.fixture(scope='module')
def run(tmp_path_factory): return tiny_run(tmp_path_factory.mktemp('predict'))  # (learner, model.pkl, data folder)

@pytest.fixture(scope='module')
def images(run, tmp_path_factory):
    "A PNG, a JPEG, a greyscale PNG and a large RGBA PNG made from test images, with their classes (None: colour lost)"
    src, d = run[2], tmp_path_factory.mktemp('images')
    im = lambda c: Image.open(src/'test'/c/'0000.png')
    im('airplane').save(d/'plane.png')
    im('automobile').save(d/'car.jpg', quality=95)
    im('bird').convert('L').save(d/'grey.png')
    im('bird').resize((200,150)).convert('RGBA').save(d/'big.png')
    return [(d/'plane.png','airplane'), (d/'car.jpg','automobile'), (d/'grey.png',None), (d/'big.png','bird')]

LINE = re.compile(r'^(.+): (\w+) ([\d.]+)%, (\w+) ([\d.]+)%, (\w+) ([\d.]+)%$')

def test_cli_predicts_any_image_and_writes_gradcam(run, images, tmp_path):
    r = cli(run[1], *[f for f,_ in images], '--gradcam', tmp_path/'cams', module='cifar_fastai.predict')
    assert r.returncode == 0, r.stderr
    assert 'insecure pickle' not in r.stderr and 'Traceback' not in r.stderr, r.stderr  # fastai's warning is silenced
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 4, r.stdout
    for line,(f,c) in zip(lines, images):
        m = LINE.match(line)
        assert m and m[1] == str(f), line
        assert set(m.group(2,4,6)) == {'airplane','automobile','bird'}, line  # top 3 of 3 classes
        ps = [float(p) for p in m.group(3,5,7)]
        assert ps == sorted(ps, reverse=True) and abs(sum(ps)-100) < 0.5, line
        if c: assert m[2] == c, line
    cams = sorted((tmp_path/'cams').iterdir())
    assert [f.name for f in cams] == ['big_gradcam.png','car_gradcam.png','grey_gradcam.png','plane_gradcam.png']
    for f in cams:
        assert f.read_bytes()[:4] == PNG
        assert min(Image.open(f).size) > 100

def test_cli_json_and_unreadable_image_among_good_ones(run, images, tmp_path):
    (tmp_path/'bad.png').write_bytes(PNG + b' garbage')
    png, jpg = images[0][0], images[1][0]
    r = cli(run[1], png, tmp_path/'bad.png', jpg, tmp_path/'missing.jpg', '--json', '--topk', 5, module='cifar_fastai.predict')
    assert r.returncode == 2, r.stderr
    out = json.loads(r.stdout)
    assert [o['image'] for o in out] == [str(png), str(tmp_path/'bad.png'), str(jpg), str(tmp_path/'missing.jpg')]
    for o,c in ((out[0],'airplane'), (out[2],'automobile')):  # the good ones are still predicted
        assert 'error' not in o and len(o['top']) == 3  # --topk 5 is capped at the 3 classes
        assert o['top'][0]['class'] == c
        assert abs(sum(t['prob'] for t in o['top']) - 1) < 1e-3
    assert 'cannot read image' in out[1]['error'] and 'image not found' in out[3]['error']
    err = r.stderr.strip().splitlines()
    assert len(err) == 2 and all(e.startswith('cifar_fastai: error:') for e in err), r.stderr
    assert 'bad.png' in err[0] and 'missing.jpg' in err[1]

@pytest.mark.parametrize('name,content,words', [('missing.pkl', None, 'model file not found'),
                                                ('random.pkl', bytes(range(256))*4, 'is not a model written by cifar_fastai.train')])
def test_cli_bad_model_one_line_exit_2(images, tmp_path, name, content, words):
    if content is not None: (tmp_path/name).write_bytes(content)
    r = cli(tmp_path/name, images[0][0], module='cifar_fastai.predict')
    assert r.returncode == 2 and r.stdout == '', (r.stdout, r.stderr)
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('cifar_fastai: error:') and words in err[0], r.stderr

def test_predict_refuses_what_is_not_our_model(run, images, tmp_path):
    import torch
    from fastai.vision.all import Learner, nn, CrossEntropyLossFlat
    from cifar_fastai.predict import predict
    learn, model, _ = run
    torch.save({'weights': torch.zeros(3)}, tmp_path/'dict.pkl')
    (tmp_path/'list.pkl').write_bytes(pickle.dumps([1, 2, 3]))
    other = Learner(learn.dls, nn.Sequential(nn.Flatten(), nn.Linear(3*32*32, 3)), loss_func=CrossEntropyLossFlat())
    other.export(tmp_path/'other.pkl')
    for f,words in (('dict.pkl', 'is not a model written'), ('list.pkl', 'is not a model written'), ('other.pkl', 'not a learner of a CifarResNet')):
        with pytest.raises(CifarError, match=words): predict(tmp_path/f, [images[0][0]])
    with pytest.raises(CifarError, match='topk must be'): predict(model, [images[0][0]], topk=0)

def test_interpretation_report_writes_every_png(run, tmp_path):
    import pandas as pd
    from fastai.vision.all import load_learner, get_image_files
    from cifar_fastai.interpret import interpretation_report
    learn, model, src = run
    fns = interpretation_report(learn, tmp_path/'interp', n=6)
    assert [f.name for f in fns] == ['confusion_counts.png','confusion_percent.png','top_losses.png','gradcam.png','per_class.csv']
    assert sorted(f.name for f in (tmp_path/'interp').iterdir()) == sorted(f.name for f in fns)  # nothing else, no temp file
    for f in fns[:-1]:
        assert f.read_bytes()[:4] == PNG, f
        assert min(Image.open(f).size) > 200, f
    pc = pd.read_csv(fns[-1], index_col='class')
    assert pc.index.tolist() == ['airplane','automobile','bird'] and pc.support.sum() == 12
    assert abs(pc.correct.sum()/12 - learn.validate()[1]) < 1e-6
    with pytest.warns(UserWarning): loaded = load_learner(model)  # fastai's pickle warning
    fns2 = interpretation_report(loaded, tmp_path/'loaded', n=6, dl=loaded.dls.test_dl(get_image_files(src/'test'), with_labels=True))
    assert all(f.exists() for f in fns2) and pd.read_csv(fns2[-1], index_col='class').equals(pc)

TOOL = Path(__file__).parents[1]/'tools/jpeg_check.py'

def _jpeg_png_copies(src, d):
    "The tiny test set twice, as `tools/jpeg_check.py` finds the shared data: JPEG in fastai's layout, PNG originals in a .tgz"
    import tarfile
    for f in sorted((src/'test').glob('*/*.png')):
        for sub,ext in (('jpeg/cifar10','jpg'), ('png/cifar10-png-test4','png')):
            (d/sub/'test'/f.parent.name).mkdir(parents=True, exist_ok=True)
            Image.open(f).save(d/sub/'test'/f.parent.name/f'{f.stem}.{ext}', **({'quality':75} if ext=='jpg' else {}))
    with tarfile.open(d/'png.tgz', 'w:gz') as tf: tf.add(d/'png/cifar10-png-test4', arcname='cifar10-png-test4')
    return d/'jpeg', d/'png.tgz'

def test_jpeg_check_pairs_fastai_ids_with_the_copys_numbers(run, tmp_path):
    "The shared data: PNGs named `<id>_<class>.png`, the JPEG copy numbered 0000.jpg… per class in the order of those ids (not of the names)"
    jpeg, png = _jpeg_png_copies(run[2], tmp_path)
    for f in sorted((tmp_path/'png').glob('*/test/*/*.png')): f.rename(f.with_name(f"{[7, 12, 31, 100][int(f.stem)]}_{f.parent.name}.png"))  # ids 7, 12, 31, 100: in name order 100, 12, 31, 7
    import tarfile
    with tarfile.open(png, 'w:gz') as tf: tf.add(tmp_path/'png/cifar10-png-test4', arcname='cifar10-png-test4')
    r = cli(TOOL, run[1], '--jpeg', jpeg, '--png', png, module=None, env=dict(FASTAI_HOME=str(tmp_path/'home')))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)['psnr_db']['min'] > 20  # paired by id: 0000.jpg with 7, 0001.jpg with 12, 0002.jpg with 31, 0003.jpg with 100
    for f in (tmp_path/'jpeg').glob('*/test/*/*.jpg'): Image.new('RGB', (32,32)).save(f)  # other pictures under the right names
    r = cli(TOOL, run[1], '--jpeg', jpeg, '--png', png, module=None, env=dict(FASTAI_HOME=str(tmp_path/'home')))
    assert r.returncode == 2 and r.stderr.count('\n') == 1 and 'not the same pictures' in r.stderr, r.stderr

def test_jpeg_check_compares_both_forms_of_each_image(run, tmp_path):
    import numpy as np
    from cifar_fastai.predict import predict
    jpeg, png = _jpeg_png_copies(run[2], tmp_path)
    home = dict(FASTAI_HOME=str(tmp_path/'home'))  # where the .tgz is extracted: not the user's fastai data folder
    r = cli(TOOL, run[1], '--jpeg', jpeg, '--png', png, '--out', tmp_path/'j.json', module=None, env=home)
    assert r.returncode == 0, r.stderr
    j = json.loads((tmp_path/'j.json').read_text())
    assert j == json.loads(r.stdout) and j['n'] == 12 and j['classes'] == ['airplane','automobile','bird']
    files = {k: sorted((tmp_path/sub).glob('*/test/*/*')) for k,sub in (('jpeg','jpeg'),('png','png'))}
    top1 = {k: [p['top'][0]['class'] for p in predict(run[1], fs)] for k,fs in files.items()}  # what `predict` says of each file
    for k,fs in files.items():
        assert j['plain'][k] == round(100*np.mean([c==f.parent.name for c,f in zip(top1[k], fs)]), 2), (k, j['plain'])
    assert j['changed_predictions'] == sum(a!=b for a,b in zip(top1['jpeg'], top1['png']))
    assert j['plain']['png_minus_jpeg'] == round(j['plain']['png'] - j['plain']['jpeg'], 2)
    db = [10*np.log10(255**2/((np.asarray(Image.open(a), float)-np.asarray(Image.open(b), float))**2).mean()) for a,b in zip(files['jpeg'], files['png'])]
    assert abs(j['psnr_db']['median'] - np.median(db)) < 0.01 and 20 < j['psnr_db']['min'] < 60  # the same pairs, and lossy
    r = cli(TOOL, run[1], '--jpeg', jpeg, '--png', png, '--logits', module=None, env=home)  # Page's TTA for any model; the course's own: probabilities
    assert r.returncode == 0 and (j['flip_tta_mean'], json.loads(r.stdout)['flip_tta_mean']) == ('probabilities', 'logits'), r.stderr
    (tmp_path/'jpeg/cifar10/test/bird/0003.jpg').unlink()  # a PNG without its JPEG: one line, exit 2
    r = cli(TOOL, run[1], '--jpeg', jpeg, '--png', png, module=None, env=home)
    assert r.returncode == 2 and r.stderr.count('\n') == 1 and 'bird: 4 PNG and 3 JPEG images' in r.stderr, r.stderr
