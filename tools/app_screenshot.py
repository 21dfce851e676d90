#!/usr/bin/env python
"""The app's picture for the docs: `python -m cifar_fastai.app MODEL` served on a free loopback port, IMAGE uploaded in Debian's Chromium
(driven by Playwright, which must not download a browser), the page saved as a 256-colour PNG once its top 3 and Grad-CAM are shown.

    python tools/app_screenshot.py MODEL.pkl IMAGE [--out nbs/images/app.png]

Needs the app and dev extras (`pip install -e ".[dev,app]"`) and `chromium` on PATH. Bad input: one line, exit 2."""
import os, sys, time, shutil, socket, signal, argparse, tempfile, subprocess, urllib.request
from pathlib import Path

ARGS = ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync']

def fail(msg): print(f"app_screenshot: error: {msg}", file=sys.stderr); sys.exit(2)

def free_port()->int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def wait_up(url, p, log, timeout=300):
    "Until the page answers; `fail` with the server's last line if it exits first"
    t = time.time()
    while time.time()-t < timeout:
        if p.poll() is not None: fail(f"the app stopped before serving: {(log.read_text().strip().splitlines() or ['(no output)'])[-1]}")
        try:
            with urllib.request.urlopen(url, timeout=5): return
        except OSError: time.sleep(1)
    fail(f"the app did not answer at {url} in {timeout} s")

def shoot(model:Path, image:Path, out:Path, width=1280, height=600):
    from playwright.sync_api import sync_playwright
    from PIL import Image
    exe = shutil.which('chromium') or fail("no chromium on PATH: apt-get install chromium")
    with tempfile.TemporaryDirectory() as tmp:
        tmp, port = Path(tmp), free_port()
        url, log = f'http://127.0.0.1:{port}/', tmp/'server.log'
        with open(log, 'w') as f:  # its uploads go to our temporary folder, gone with it
            p = subprocess.Popen([sys.executable, '-m', 'cifar_fastai.app', str(model), '--host', '127.0.0.1', '--port', str(port)],
                                 stdout=f, stderr=subprocess.STDOUT, env={**os.environ, 'GRADIO_TEMP_DIR': str(tmp/'gradio')})
        try:
            wait_up(url, p, log)
            with sync_playwright() as pw:
                b = pw.chromium.launch(executable_path=exe, args=ARGS, timeout=60_000)
                try:
                    page = b.new_page(viewport={'width': width, 'height': height})
                    page.goto(url, timeout=120_000)
                    page.locator('input[type=file]').first.set_input_files(str(image))
                    page.locator('#top [data-testid="label-output-value"]').wait_for(timeout=120_000)
                    page.wait_for_function("document.querySelector('#msg') && document.querySelector('#msg').innerText.includes('Grad-CAM')", timeout=120_000)
                    page.locator('#cam img').wait_for(timeout=60_000)
                    label = page.locator('#top [data-testid="label-output-value"]').inner_text().strip()
                    page.screenshot(path=str(tmp/'app.png'), full_page=True)
                finally: b.close()
        finally:
            p.send_signal(signal.SIGTERM)
            try: p.wait(30)
            except subprocess.TimeoutExpired: p.kill()
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.open(tmp/'app.png').convert('RGB').quantize(256).save(out, optimize=True)  # 256 colours are plenty for a page, at a third of the bytes
    return label

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('model', type=Path, help="a model.pkl written by python -m cifar_fastai.train")
    ap.add_argument('image', type=Path, help="the image to upload")
    ap.add_argument('--out', type=Path, default=Path('nbs/images/app.png'), help="where the PNG goes")
    a = ap.parse_args()
    for k in ('model', 'image'):
        if not getattr(a, k).is_file(): fail(f"{k} not found: {getattr(a, k)}")
    print(f"{a.out}: {a.image.name} -> {shoot(a.model, a.image, a.out)}")
