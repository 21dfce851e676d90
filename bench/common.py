"""Shared by the benchmark scripts: arguments, a header line naming the machine, device-aware timing and autocast, and medians.

`--device cuda` runs a script on the GPU (default: the CPU, as before); `--precisions` picks the variants (default fp32 and bf16
on the CPU, fp16, bf16 and fp32 on CUDA); `--json FILE` also writes the medians and ratios there (`tools/gpu_check` reads them)."""
import argparse, json, platform, statistics, time
import torch
import cifar_fastai.data  # first: it silences a deprecation warning that fastai's import raises on new torch
from fastai.vision.all import defaults
from cifar_fastai.learner import cpu_info, cpu_bf16_native, resolve_precision

def parser(doc, **defaults_):
    p = argparse.ArgumentParser(description=doc.split('\n')[0])
    p.add_argument('--data', help="CIFAR-10 folder or .tgz (default: $CIFAR_FASTAI_DATA, else fastai's download)")
    p.add_argument('--bs', type=int, default=512)
    p.add_argument('--rounds', type=int, default=defaults_.get('rounds', 3), help='alternating measurements of each variant; medians are reported')
    p.add_argument('--device', default='cpu', help="'cpu' (default) or 'cuda'")
    p.add_argument('--precisions', help="comma-separated, fp32 first or not (default: fp32,bf16 on the CPU, fp16,bf16,fp32 on CUDA)")
    p.add_argument('--json', help='also write the medians and ratios to this JSON file')
    return p

def precisions(a)->list:
    "The precisions to measure, fp32 always among them (the ratios are against it)"
    ps = a.precisions.split(',') if a.precisions else ['fp16','bf16','fp32'] if torch.device(a.device).type=='cuda' else ['fp32','bf16']
    for p in ps:
        if p not in ('fp32','bf16','fp16'): raise SystemExit(f"unknown precision {p!r}: use fp32, bf16 or fp16")
    return ps if 'fp32' in ps else ps+['fp32']

def header(a):
    ci = cpu_info(); flags = sorted(f for f in ci['flags'] if 'avx512' in f or 'amx' in f or f in ('avx2','bf16'))
    print(f"# CPU {ci['model']} ({platform.machine()}, {defaults.cpus} cores; {' '.join(flags) or 'no AVX2/AVX-512/AMX flags'})", flush=True)
    if torch.device(a.device).type=='cuda':
        print(f"# GPU {torch.cuda.get_device_name(a.device)}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}", flush=True)
    print(f"# native bf16: {cpu_bf16_native()}; precision 'auto' picks {resolve_precision('auto', 'cpu')} on this CPU", flush=True)
    print(f"# torch {torch.__version__} with {torch.get_num_threads()} threads; bs {a.bs}; device {a.device}", flush=True)

def now(device)->float:
    "`time.perf_counter()` once the device has done all it was given (CUDA runs asynchronously)"
    if torch.device(device).type=='cuda': torch.cuda.synchronize(device)
    return time.perf_counter()

def autocast(device, precision):
    "The autocast of a plain loop in `precision` on `device` (a no-op for fp32)"
    dt = torch.device(device).type
    return torch.autocast(dt, dtype=torch.float16 if precision=='fp16' else torch.bfloat16, enabled=precision!='fp32')

def median(xs): return statistics.median(xs)

def round_line(r, res): print(f"round {r+1}: " + ', '.join(f"{k} {v[-1]:.1f}" for k,v in res.items()) + " images/s", flush=True)

def _ratios_out(m, ratios, rounds, fn=None):
    "Print the ratios; write the medians `m` and the ratios to the JSON file `fn` (`tools/gpu_check` reads it)"
    for k,v in ratios.items(): print(f"ratio {k}: {v:.3f}")
    if fn: open(fn, 'w').write(json.dumps(dict(images_per_s=m, ratios=ratios, rounds=rounds), indent=2))

def report(res, names, rounds, ps=('fp32','bf16'), fn=None):
    "Each variant's median, then the fastai/plain and precision/fp32 ratios; all of it to the JSON file `fn` too"
    m = {k:median(v) for k,v in res.items()}
    for k,name in names.items(): print(f"{name}: {m[k]:.1f} images/s (median of {rounds})")
    ratios = {f'fastai/plain ({p})': m['fastai_'+p]/m['plain_'+p] for p in ps}
    ratios |= {f'{p}/fp32 ({k})': m[f'{k}_{p}']/m[k+'_fp32'] for p in ps if p!='fp32' for k in ('fastai','plain')}
    _ratios_out(m, ratios, rounds, fn)

def report_recipes(res, rs, ps, rounds, fn=None):
    "Each recipe's median images/s per precision, then each recipe's step cost against the first's (`rs[0]`); all of it to the JSON file `fn` too"
    m = {k:median(v) for k,v in res.items()}
    for k,v in m.items(): print(f"{k}: {v:.1f} images/s (median of {rounds})")
    ratios = {f'{r}/{rs[0]} step cost ({p})': m[f'{rs[0]}_{p}']/m[f'{r}_{p}'] for p in ps for r in rs[1:]}  # time per step: the inverse of the rates' ratio
    _ratios_out(m, ratios, rounds, fn)
