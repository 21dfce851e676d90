"""The JPEG effect (issue 18, item 5): one model's test accuracy on the same images, once as the lossy JPEG copy every
run here trains and tests on, once as the lossless PNG originals.

`../shared/data/cifar10-png-test4.tgz` holds 4,000 lossless CIFAR-10 test images (airplane, automobile, ship, truck)
under fastai's file names (`<id>_<class>.png`); the JPEG copy numbers each class's images `0000.jpg`… in the order of
those ids, so the k-th PNG of a class by id is its `k`-th JPEG (images with the same name are paired by name). A wrong
pairing would show as a PSNR of about 10 dB instead of about 30, and is refused. Both forms go through the path `predict`
uses (`cifar_image`, then the test set's transforms) and the model's full 10-way prediction; accuracy is plain and
with flip TTA (the mean of each image's and its mirror's probabilities, or of their logits for a recipe that validates so:
`fast`; `--logits` chooses). It also gives the PSNR of the JPEG against
the PNG, so that a gap can be read against the damage. Page's figures were measured on the lossless data.

    python tools/jpeg_check.py /work/runs/fast-s0/model.pkl --jpeg ../shared/data/cifar10-jpeg.tgz \\
        --png ../shared/data/cifar10-png-test4.tgz --out results/fast-s0/jpeg_check.json
"""
import re, json, time
from pathlib import Path
import numpy as np, torch
from fastcore.script import call_parse
from fastcore.basics import ifnone
from cifar_fastai.core import CifarError, run_cli, save_json
from cifar_fastai.source import extract_tgz, open_image, cifar_root
from cifar_fastai.predict import load_cifar_learner, cifar_image
from cifar_fastai.learner import cpu_info

def _test_folder(data:str)->Path:
    "The `test/` folder of `data` (a folder holding one, its only sub-folder holding one, or a `.tgz` of either)"
    p = Path(data).expanduser()
    if not p.exists(): raise CifarError(f"not found: {p}")
    t = cifar_root(extract_tgz(p) if p.is_file() else p, 'test')/'test'  # the archive's wrapper folder, as for the training data
    if not t.is_dir(): raise CifarError(f"{p} holds no test/ folder (fastai's layout: test/<class>/<image>)")
    return t

def _id(f:Path)->tuple:
    "Sort key of an image file: the number its name starts with (fastai's `<id>_<class>.png`, the copy's `0042.jpg`), then the name"
    m = re.match(r'\d+', f.stem)
    return (int(m.group()) if m else -1, f.stem)

def pairs(jpeg:str, # the JPEG copy: folder or .tgz in fastai's layout
          png:str, # the lossless originals: folder or .tgz with test/<class>/*.png
         )->list:
    "`(class, jpeg file, png file)` for every PNG test image; `CifarError` if they cannot be paired"
    tj, tp, res = _test_folder(jpeg), _test_folder(png), []
    for d in sorted(p for p in tp.iterdir() if p.is_dir()):
        pngs = sorted(d.glob('*.png'), key=_id)
        same = [tj/d.name/f'{f.stem}.jpg' for f in pngs]
        if not all(j.is_file() for j in same):  # the shared copy renumbers each class 0000.jpg, 0001.jpg… in the order of fastai's ids
            same = sorted((tj/d.name).glob('*.jpg'), key=_id)
            if len(same) != len(pngs):
                raise CifarError(f"{d.name}: {len(pngs)} PNG and {len(same)} JPEG images whose names differ: cannot pair them (same names, or every image of the class in both)")
        res += [(d.name, j, f) for j,f in zip(same, pngs)]
    if not res: raise CifarError(f"no PNG images in {tp}/<class>/")
    return res

def psnr(a:np.ndarray, b:np.ndarray)->float:
    "PSNR in dB of two uint8 images of one shape; inf when they are equal"
    mse = ((a.astype(np.float64)-b.astype(np.float64))**2).mean()
    return float('inf') if mse == 0 else float(10*np.log10(255**2/mse))

def _accuracy(learn, files, y:torch.Tensor, logits:bool=None)->dict:
    "Plain and flip-TTA accuracy of `learn` on `files` with targets `y`, overall and per class"
    dl = learn.dls.test_dl([cifar_image(f) for f in files], bs=256)
    p, _, p0 = learn.flip_tta(dl, logits, plain=True)  # p0: the single view, the first of flip TTA's two passes
    return dict(plain=(p0.argmax(1)==y).float().mean().item(), flip_tta=(p.argmax(1)==y).float().mean().item(),
                pred=p0.argmax(1), pred_tta=p.argmax(1))

def jpeg_check(model:str, jpeg:str, png:str, precision:str='auto', logits:bool=None)->dict:
    "What `jpeg_check.json` records: accuracies on both forms, their differences (PNG − JPEG, points) and the PSNR"
    t0, learn, ps = time.time(), load_cifar_learner(model, precision), pairs(jpeg, png)
    vocab = [str(v) for v in learn.dls.vocab]
    bad = sorted({c for c,_,_ in ps} - set(vocab))
    if bad: raise CifarError(f"classes {bad} of the PNG images are not the model's ({', '.join(vocab)})")
    y = torch.tensor([vocab.index(c) for c,_,_ in ps])
    logits = bool(ifnone(logits, getattr(learn, 'tta_logits', False)))  # None: the model's recipe's way
    acc = {k: _accuracy(learn, [p[i] for p in ps], y, logits) for k,i in (('jpeg',1),('png',2))}
    db = [psnr(np.array(open_image(j)), np.array(open_image(p))) for _,j,p in ps]
    if np.median(db) < 20: raise CifarError(f"the JPEG and PNG images paired by name differ too much (median PSNR {np.median(db):.1f} dB; the same picture gives about 30): not the same pictures")
    pct = lambda v: round(100*v, 2)
    res = dict(model=str(model), n=len(ps), classes=sorted({c for c,_,_ in ps}), precision=learn.precision,
               flip_tta_mean='logits' if logits else 'probabilities')
    for k in ('plain', 'flip_tta'):
        res[k] = {f: pct(acc[f][k]) for f in ('jpeg','png')} | {'png_minus_jpeg': round(100*(acc['png'][k]-acc['jpeg'][k]), 2)}
    res['changed_predictions'] = int((acc['png']['pred'] != acc['jpeg']['pred']).sum())
    res['per_class_plain'] = {c: {f: pct((acc[f]['pred'][y==vocab.index(c)]==vocab.index(c)).float().mean().item()) for f in ('jpeg','png')}
                              for c in res['classes']}
    res['psnr_db'] = dict(median=round(float(np.median(db)), 2), mean=round(float(np.mean(db)), 2), min=round(float(np.min(db)), 2))
    res.update(cpu=cpu_info()['model'], seconds=round(time.time()-t0, 1), date=time.strftime('%Y-%m-%d'))
    return res

@call_parse
def main(model:str, # a model.pkl written by `python -m cifar_fastai.train`
         jpeg:str='../shared/data/cifar10-jpeg.tgz', # the JPEG copy (folder or .tgz) the model was tested on
         png:str='../shared/data/cifar10-png-test4.tgz', # lossless originals of some of its test images (folder or .tgz)
         out:str=None, # also write the result here as JSON (e.g. results/<run>/jpeg_check.json)
         precision:str='auto', # 'auto', 'fp32', 'bf16' or 'fp16' (see `cifar_learner`)
         logits:bool=False, # flip TTA averages the logits (Page's way) for any model; without it: as the model's recipe validates (`fast`: logits; else probabilities)
        ):
    "A model's accuracy on the same test images as JPEG and as lossless PNG"
    def go():
        r = jpeg_check(model, jpeg, png, precision, logits or None)
        if out: save_json(Path(out), r)
        print(json.dumps(r, indent=1))
    run_cli(go)
