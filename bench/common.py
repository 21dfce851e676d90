"Shared by the benchmark scripts: arguments, a header line naming the machine, and medians"
import argparse, platform, statistics
import torch
import cifar_fastai.data  # first: it silences a deprecation warning that fastai's import raises on new torch
from fastai.vision.all import defaults
from cifar_fastai.learner import cpu_info, cpu_bf16_native, resolve_precision

def parser(doc, **defaults_):
    p = argparse.ArgumentParser(description=doc.split('\n')[0])
    p.add_argument('--data', help="CIFAR-10 folder or .tgz (default: $CIFAR_FASTAI_DATA, else fastai's download)")
    p.add_argument('--bs', type=int, default=512)
    p.add_argument('--rounds', type=int, default=defaults_.get('rounds', 3), help='alternating measurements of each variant; medians are reported')
    return p

def header(a):
    ci = cpu_info(); flags = sorted(f for f in ci['flags'] if 'avx512' in f or 'amx' in f or f in ('avx2','bf16'))
    print(f"# CPU {ci['model']} ({platform.machine()}, {defaults.cpus} cores; {' '.join(flags) or 'no AVX2/AVX-512/AMX flags'})", flush=True)
    print(f"# native bf16: {cpu_bf16_native()}; precision 'auto' picks {resolve_precision('auto', 'cpu')} on this CPU", flush=True)
    print(f"# torch {torch.__version__} with {torch.get_num_threads()} threads; bs {a.bs}", flush=True)

def median(xs): return statistics.median(xs)

def round_line(r, res): print(f"round {r+1}: " + ', '.join(f"{k} {v[-1]:.1f}" for k,v in res.items()) + " images/s", flush=True)

def report(res, names, rounds):
    "Each variant's median, then the fastai/plain and bf16/fp32 ratios"
    m = {k:median(v) for k,v in res.items()}
    for k,name in names.items(): print(f"{name}: {m[k]:.1f} images/s (median of {rounds})")
    for p in ('fp32','bf16'): print(f"ratio fastai/plain ({p}): {m['fastai_'+p]/m['plain_'+p]:.3f}")
    for k in ('fastai','plain'): print(f"ratio bf16/fp32 ({k}): {m[k+'_bf16']/m[k+'_fp32']:.3f}")
