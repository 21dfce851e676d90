"Shared by the benchmark scripts: arguments, a header line, and medians"
import argparse, platform, statistics
import torch
import cifar_fastai.data  # first: it silences a deprecation warning that fastai's import raises on new torch
from fastai.vision.all import defaults

def parser(doc, **defaults_):
    p = argparse.ArgumentParser(description=doc.split('\n')[0])
    p.add_argument('--data', help="CIFAR-10 folder or .tgz (default: $CIFAR_FASTAI_DATA, else fastai's download)")
    p.add_argument('--bs', type=int, default=512)
    p.add_argument('--rounds', type=int, default=defaults_.get('rounds', 3), help='alternating measurements of each variant; medians are reported')
    return p

def header(a): print(f"# {platform.machine()}, {defaults.cpus} cores, torch {torch.__version__} with {torch.get_num_threads()} threads, CPU fp32; bs {a.bs}", flush=True)
def median(xs): return statistics.median(xs)

def round_line(r, res): print(f"round {r+1}: " + ', '.join(f"{k} {v[-1]:.1f}" for k,v in res.items()) + " images/s", flush=True)

def report(res, names, rounds):
    "Each variant's median, then the fastai/plain and channels_last/contiguous ratios"
    m = {k:median(v) for k,v in res.items()}
    for k,name in names.items(): print(f"{name}: {m[k]:.1f} images/s (median of {rounds})")
    print(f"ratio fastai/plain (contiguous): {m['fastai']/m['plain']:.3f}")
    print(f"ratio fastai/plain (channels_last, our default): {m['fastai_cl']/m['plain_cl']:.3f}")
    print(f"ratio channels_last/contiguous (fastai): {m['fastai_cl']/m['fastai']:.3f}")
