"""Data pipeline throughput: the uint8 cache with batch augmentation vs fastai's per-image PIL path, side by side.

    python bench/data.py --data ../shared/data/cifar10-jpeg.tgz
    python bench/data.py --data ../shared/data/cifar10-jpeg.tgz --device cuda --no_build   # batches made on the GPU

Prints the cache's build time (decoding into a temporary file) and load time, then augmented training batches per second
from each path's DataLoader, alternating fast, per-image, fast, per-image, ... so both see the same machine state."""
import time, tempfile, json
from pathlib import Path
from common import parser, header, median, now
from fastai.vision.all import defaults
from cifar_fastai.source import cifar_source
from cifar_fastai.cache import cifar_cache
from cifar_fastai.data import cifar_dls

def throughput(dl, n_batches):
    "Augmented images/s over `n_batches` batches of `dl` (after one warm-up batch), on `dl`'s device"
    it = iter(dl); next(it)
    t, n = now(dl.device), 0
    for _ in range(n_batches):
        xb, yb = next(it); n += len(xb)
    return n/(now(dl.device)-t)

def main():
    p = parser(__doc__)
    p.add_argument('--fast_batches', type=int, default=90, help='batches per fast-path measurement')
    p.add_argument('--pil_batches', type=int, default=8, help='batches per per-image measurement')
    p.add_argument('--workers', type=int, default=defaults.cpus, help='loader processes of the per-image path (default: all cores)')
    p.add_argument('--no_build', action='store_true', help="skip timing a cache build and load in a temporary file (two decodes less)")
    a = p.parse_args(); header(a)
    path, res = cifar_source(a.data), {}
    if not a.no_build:
        with tempfile.TemporaryDirectory() as d:
            c = cifar_cache(path, fn=Path(d)/'cache.pt', rebuild=True)
            print(f"cache build: {len(c):,} images decoded and saved in {c.secs:.1f} s ({len(c)/c.secs:,.0f} images/s)")
            res['cache_build_s'] = c.secs
            c = cifar_cache(path, fn=Path(d)/'cache.pt')
            assert not c.built
            print(f"cache load: {c.secs:.2f} s (file read; the fingerprint of the images is extra)")
            res['cache_load_s'] = c.secs
    c = cifar_cache(path)  # the default cache file: built now if it is missing or stale
    if c.built: print(f"(default cache file {c.fn} was missing or stale: built in {c.secs:.1f} s)")
    t = time.perf_counter(); fast = cifar_dls(path, bs=a.bs, device=a.device, seed=0)
    assert not fast.cache.built
    print(f"cifar_dls (fast, cache current, fingerprint of every image included): {time.perf_counter()-t:.1f} s")
    t = time.perf_counter(); pil = cifar_dls(path, bs=a.bs, device=a.device, seed=0, pil=True, num_workers=a.workers, verify=False)
    print(f"cifar_dls (per-image): {time.perf_counter()-t:.1f} s")
    rf, rp = [], []
    for r in range(a.rounds):
        rf.append(throughput(fast.train, a.fast_batches))
        rp.append(throughput(pil.train, a.pil_batches))
        print(f"round {r+1}: fast {rf[-1]:,.0f} images/s, per-image ({a.workers} workers) {rp[-1]:,.0f} images/s")
    f, q = median(rf), median(rp)
    print(f"fast path (uint8 cache, batch pad/crop/flip/Cutout/Normalize): {f:,.0f} augmented images/s (median of {a.rounds})")
    print(f"per-image path (fastai PIL item tfms, {a.workers} workers): {q:,.0f} augmented images/s (median of {a.rounds})")
    print(f"ratio fast/per-image: {f/q:.1f}x")
    if a.json: Path(a.json).write_text(json.dumps(res | dict(fast_images_per_s=f, pil_images_per_s=q, ratio_fast_pil=f/q, pil_workers=a.workers, device=a.device), indent=2))

if __name__=='__main__': main()
