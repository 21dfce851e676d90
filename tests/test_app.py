"The web app on a tiny model trained once for this file: the code behind the page (no Gradio needed), the server over HTTP with `gradio_client`, what it leaves on disk, and the page in a real browser (Debian's Chromium driven by Playwright)."
import io, os, sys, json, time, base64, shutil, signal, socket, subprocess, importlib.util, urllib.error, urllib.parse, urllib.request, pytest
from pathlib import Path
from PIL import Image
from conftest import cli, tiny_run, sigint_default

PNG = b'\x89PNG'
BROWSER_ARGS = ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
                '--no-first-run', '--disable-sync']

@pytest.fixture(scope='module')
def run(tmp_path_factory): return tiny_run(tmp_path_factory.mktemp('app'))[1:]  # (model.pkl, data folder)

@pytest.fixture(scope='module')
def images(run, tmp_path_factory):
    "Good images of other formats, sizes and modes with `predict`'s top class each, and files that are not readable images"
    from cifar_fastai.predict import predict
    src, d = run[1], tmp_path_factory.mktemp('images')
    im = lambda c: Image.open(src/'test'/c/'0001.png')
    im('airplane').save(d/'plane.png')
    im('automobile').save(d/'car.jpg', quality=95)
    im('bird').resize((200,150)).convert('RGBA').save(d/'big bird.png')
    good = [d/'plane.png', d/'car.jpg', d/'big bird.png']
    tops = [r['top'][0]['class'] for r in predict(run[0], good)]
    assert tops == ['airplane','automobile','bird'], tops  # the tiny model is right on them: a wrong answer below is the app's
    (d/'notes.png').write_text('not an image, whatever its name says')
    (d/'trunc.png').write_bytes((d/'plane.png').read_bytes()[:120])
    (d/'empty.jpg').write_bytes(b'')
    return list(zip(good, tops)), [d/'notes.png', d/'trunc.png', d/'empty.jpg']

# --- the code behind the page, without a server ---

def test_page_function_gives_predicts_top_class_and_a_cam(run, images):
    from cifar_fastai.app import CifarDemo, PRED, page_outputs
    from cifar_fastai.predict import cifar_image
    from cifar_fastai.interpret import gradcam
    demo = CifarDemo(run[0])
    for f,top in images[0]:
        d = demo(f)
        assert list(d['top'])[0] == d['cls'] == top, (f, d['top'])
        ps = list(d['top'].values())
        assert len(ps) == 3 and ps == sorted(ps, reverse=True) and abs(sum(ps)-1) < 1e-4, ps
        assert d['cam'].shape == (192, 2*192+12, 3) and d['cam'].dtype.name == 'uint8'
        assert (d['cam'][:, :192] != d['cam'][:, -192:]).any()  # the heat map is drawn over the right panel
        label, cam, msg = page_outputs(demo, dict(path=str(f), orig_name=f.name), PRED)
        assert list(label)[0] == top and cam.shape == d['cam'].shape and f'**{top}**' in msg
        x = demo.learn.dls.test_dl([cifar_image(f)]).one_batch()[0]
        c = gradcam(demo.learn, x)
        assert c.shape == (1,32,32) and c.min() >= 0 and abs(c.max()-1) < 1e-6, (c.shape, c.min(), c.max())

def test_page_function_bad_input_is_a_message(run, images):
    from cifar_fastai.app import CifarDemo, page_outputs
    demo = CifarDemo(run[0])
    for f in images[1]:
        label, cam, msg = page_outputs(demo, dict(path=str(f), orig_name=f'my {f.name}'))
        assert (label, cam) == (None, None) and msg.startswith(f'cannot read image my {f.name}:'), msg
        assert str(f.parent) not in msg  # the server's temporary path is not shown
    for nothing in (None, '', dict(path=None)):
        label, cam, msg = page_outputs(demo, nothing)
        assert (label, cam) == (None, None) and msg.startswith('No image yet'), (nothing, msg)
    assert list(demo(images[0][0][0])['top'])[0] == images[0][0][1]  # and it still answers

def test_module_imports_without_gradio(run):
    code = "import sys; sys.modules['gradio'] = None; import cifar_fastai.app as a; print(a.CifarDemo.__name__)"  # None: `import gradio` fails
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == 'CifarDemo', r.stderr
    code = f"import sys; sys.modules['gradio'] = None; sys.argv = ['app', {str(run[0])!r}]; import runpy; runpy.run_module('cifar_fastai.app', run_name='__main__')"
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == ["cifar_fastai: error: the app needs Gradio: pip install 'cifar_fastai[app]' (or pip install gradio)"], r.stderr

@pytest.mark.parametrize('name,content,words', [('missing.pkl', None, 'model file not found'),
                                                ('random.pkl', bytes(range(256))*4, 'is not a model written by cifar_fastai.train')])
def test_cli_bad_model_one_line_exit_2(tmp_path, name, content, words):
    if content is not None: (tmp_path/name).write_bytes(content)
    r = cli(tmp_path/name, module='cifar_fastai.app')
    assert r.returncode == 2 and r.stdout == '', (r.stdout, r.stderr)
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('cifar_fastai: error:') and words in err[0], r.stderr

# --- the server, over HTTP ---

def _free_port()->int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _wait_up(url, p, log, timeout=240):
    "Wait until `url` answers; fail with the server's output if it exits or does not come up in `timeout` s"
    t = time.time()
    while time.time()-t < timeout:
        if p.poll() is not None: pytest.fail(f"the app exited with {p.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200: return
        except OSError: time.sleep(1)
    pytest.fail(f"the app did not answer at {url} in {timeout} s:\n{log.read_text()}")

def _start(model, tmp, *args):
    "`python -m cifar_fastai.app` on 127.0.0.1 and a free port with `args`, its temporary files under `tmp/gradio`: (process, url, its output file)"
    pytest.importorskip('gradio', reason="the app extra is not installed: pip install -e '.[app]'")
    port, log = _free_port(), tmp/'server.log'
    env = {**os.environ, 'GRADIO_TEMP_DIR': str(tmp/'gradio')}  # uploads go to the test's folder, not /tmp/gradio
    with open(log, 'w') as out:
        p = subprocess.Popen([sys.executable, '-m', 'cifar_fastai.app', str(model), '--host', '127.0.0.1', '--port', str(port), *args],
                             stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=sigint_default)  # the SIGINT tests need Python's handler
    return p, f'http://127.0.0.1:{port}/', log

def _stop(p, sig=signal.SIGTERM)->int:
    p.send_signal(sig)
    try: return p.wait(30)
    except subprocess.TimeoutExpired: p.kill(); p.wait(30); pytest.fail(f"the app did not stop on {sig.name} in 30 s")

@pytest.fixture(scope='module')
def server(run, tmp_path_factory):
    "The app in a subprocess, stopped after this file's tests: (url, its output file)"
    p, url, log = _start(run[0], tmp_path_factory.mktemp('server'))
    try:
        _wait_up(url, p, log)
        yield url, log
    finally: _stop(p)

@pytest.fixture
def client(server, tmp_path):
    pytest.importorskip('gradio_client', reason="gradio_client comes with the app extra: pip install -e '.[app]'")
    from gradio_client import Client
    return Client(server[0], verbose=False, download_files=str(tmp_path), analytics_enabled=False)

def _png(cam)->Image.Image:
    "The overlay as the page gets it: a PNG inside the answer, in a `data:` URL, not a file on the server"
    assert cam['path'] is None and cam['url'].startswith('data:image/png;base64,'), str(cam)[:200]
    im = Image.open(io.BytesIO(base64.b64decode(cam['url'].split(',', 1)[1])))
    assert im.format == 'PNG'
    return im

def test_server_prints_its_loopback_address(server):
    assert f"Running on local URL:  {server[0].rstrip('/')}" in server[1].read_text(), server[1].read_text()

def test_server_predicts_like_predict(client, images):
    from gradio_client import handle_file
    from cifar_fastai.app import PRED
    for f,top in images[0]:
        label, cam, msg = client.predict(handle_file(str(f)), PRED, api_name='/predict')
        assert label['label'] == top, (f, label)
        ps = [c['confidence'] for c in label['confidences']]
        assert len(ps) == 3 and ps == sorted(ps, reverse=True) and abs(sum(ps)-1) < 1e-4, label
        assert _png(cam).size == (2*192+12, 192)
        assert f'**{top}**' in msg
    label, cam, msg = client.predict(handle_file(str(images[0][0][0])), 'bird', api_name='/explain')
    assert label['label'] == images[0][0][1] and '**bird**' in msg  # the picker changes the evidence shown, not the prediction

def test_server_bad_files_give_a_message_and_it_keeps_serving(client, images):
    from gradio_client import handle_file
    from cifar_fastai.app import PRED
    for f in images[1]:
        label, cam, msg = client.predict(handle_file(str(f)), PRED, api_name='/predict')
        assert cam is None and not (label or {}).get('label') and msg.startswith(f'cannot read image {f.name}:'), (label, cam, msg)
    label, cam, msg = client.predict(None, PRED, api_name='/predict')
    assert cam is None and msg.startswith('No image yet'), msg
    label, _, _ = client.predict(handle_file(str(images[0][2][0])), PRED, api_name='/predict')
    assert label['label'] == images[0][2][1]

def test_cli_busy_port_missing_examples_bad_forget_after_exit_2(run, server, tmp_path):
    port = int(server[0].rstrip('/').rsplit(':', 1)[1])  # the server above holds it
    for args,words in (([f'--port', port], f'cannot serve on 127.0.0.1:{port}'), (['--examples', tmp_path/'nope'], 'examples folder not found'),
                       (['--forget_after', '-1'], 'forget_after must be 0')):
        r = cli(run[0], *args, module='cifar_fastai.app', env={'GRADIO_TEMP_DIR': str(tmp_path/'gradio')})
        err = r.stderr.strip().splitlines()
        assert r.returncode == 2 and err and err[-1].startswith('cifar_fastai: error:') and words in err[-1], r.stderr
        assert not any(l.startswith('cifar_fastai: error:') for l in err[:-1]) and 'Traceback' not in r.stderr, r.stderr
        assert list((tmp_path/'gradio').iterdir()) == [], list((tmp_path/'gradio').rglob('*'))  # its temporary folder is gone

# --- what the server keeps on disk ---

def _files(d:Path)->set: return {p for p in d.rglob('*') if p.is_file()}

def _status(url, path)->int:
    "HTTP status of the file route for a path on the server"
    try:
        with urllib.request.urlopen(url + 'gradio_api/file=' + urllib.parse.quote(str(path)), timeout=30) as r: return r.status
    except urllib.error.HTTPError as e: return e.code

def _call(url, api, *data)->list:
    "`data` to the API endpoint `api` over plain HTTP (no client): the outputs"
    req = urllib.request.Request(f'{url}gradio_api/call/{api}', json.dumps({'data': data}).encode(), {'Content-Type': 'application/json'})
    with urllib.request.urlopen(req, timeout=60) as r: eid = json.loads(r.read())['event_id']
    with urllib.request.urlopen(f'{url}gradio_api/call/{api}/{eid}', timeout=120) as r: lines = r.read().decode().splitlines()
    assert lines[0] == 'event: complete', lines
    return json.loads(lines[1].removeprefix('data: '))

@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT], ids=['SIGTERM', 'SIGINT'])
def test_server_forgets_uploads_and_leaves_nothing_when_stopped(run, images, tmp_path, sig):
    "An upload is served while needed, deleted `--forget_after` seconds later; the overlay is never a file; after the stop nothing is left"
    pytest.importorskip('gradio_client', reason="gradio_client comes with the app extra: pip install -e '.[app]'")
    from gradio_client import Client, handle_file
    from cifar_fastai.app import PRED
    p, url, log = _start(run[0], tmp_path, '--forget_after', '3')
    gtmp = tmp_path/'gradio'
    try:
        _wait_up(url, p, log)
        c = Client(url, verbose=False, download_files=str(tmp_path/'dl'), analytics_enabled=False)
        start = _files(gtmp)  # Gradio's copies of the examples and of the run's pictures, for the page
        assert {'confusion_percent.png', 'top_losses.png'} <= {q.name for q in start}, start
        (f, top), (g, top2) = images[0][:2]
        label, cam, msg = c.predict(handle_file(str(f)), PRED, api_name='/predict')
        assert label['label'] == top and _png(cam).size == (2*192+12, 192)
        up, = _files(gtmp) - start  # the upload, nothing else: the overlay is not a file
        assert up.name == f.name and up.read_bytes() == f.read_bytes() and _status(url, up) == 200  # served while it is needed
        t = time.time()
        while up.exists() and time.time()-t < 60: time.sleep(0.5)
        assert not up.exists() and _status(url, up) == 403, f"upload still there {time.time()-t:.0f} s after --forget_after 3"
        gone = dict(path=str(up), orig_name='holiday.png', meta={'_type': 'gradio.FileData'})  # the page still shows it: pick a class
        assert _call(url, 'explain', gone, top)[2].startswith('holiday.png is no longer on the server'), _call(url, 'explain', gone, top)
        assert _files(gtmp) == start  # the examples and run pictures stay while the page is served
        label, _, _ = c.predict(handle_file(str(g)), PRED, api_name='/predict')  # one more, still there when the server stops
        assert label['label'] == top2 and {q.name for q in _files(gtmp) - start} == {g.name}, _files(gtmp) - start
    finally: rc = _stop(p, sig)
    assert rc == 0 and 'Traceback' not in log.read_text(), log.read_text()
    assert list(gtmp.rglob('*')) == []  # no upload, copy or folder of the app's left

# --- the page, in a real browser ---

def _chromium():
    "Debian's Chromium and Playwright's sync API, or skip saying which is missing (Playwright must not download a browser)"
    if importlib.util.find_spec('playwright') is None: pytest.skip("playwright is not installed: pip install -e '.[dev]'")
    exe = shutil.which('chromium')
    if exe is None: pytest.skip("no chromium on PATH: apt-get install chromium (the browser test drives the system's Chromium)")
    from playwright.sync_api import sync_playwright
    return exe, sync_playwright

def test_browser_upload_shows_predicts_class_offline(server, images, tmp_path):
    exe, sync_playwright = _chromium()
    url, (png, top) = server[0], images[0][2]
    requests = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=BROWSER_ARGS, timeout=60_000)
        try:
            page = browser.new_page(viewport={'width': 1280, 'height': 600})
            page.on('request', lambda r: requests.append(r.url))
            page.goto(url, timeout=120_000)
            page.locator('input[type=file]').first.set_input_files(str(png))
            label = page.locator('#top [data-testid="label-output-value"]')
            label.wait_for(timeout=120_000)
            page.wait_for_function("document.querySelector('#msg') && document.querySelector('#msg').innerText.includes('Grad-CAM')", timeout=120_000)
            page.locator('#cam img').wait_for(timeout=60_000)
            assert label.inner_text().strip() == top
            assert page.locator('#cam img').get_attribute('src').startswith('data:image/png;base64,')  # the overlay is not a file on the server
            shot = page.screenshot(path=str(tmp_path/'app.png'), full_page=True)
            if os.environ.get('CIFAR_FASTAI_SCREENSHOT'):  # for the docs: 256 colours are plenty for a page, at a third of the bytes
                Image.open(tmp_path/'app.png').convert('RGB').quantize(256).save(os.environ['CIFAR_FASTAI_SCREENSHOT'], optimize=True)
            page.get_by_text('The run: confusion matrix and top losses').click()  # the run's pictures are served too
            page.wait_for_function("[...document.images].some(i => i.src.includes('confusion_percent') && i.complete && i.naturalWidth > 200)", timeout=60_000)
            page.locator('input[type=file]').first.set_input_files(str(images[1][0]))  # not an image: a message in the page
            page.wait_for_function("document.querySelector('#msg').innerText.includes('cannot read image notes.png')", timeout=120_000)
        finally: browser.close()
    w, h = Image.open(tmp_path/'app.png').size
    assert shot[:4] == PNG and w == 1280 and h >= 600, (w, h)
    far = [u for u in requests if not u.startswith((url, 'data:', 'blob:'))]
    assert requests and not far, far  # offline: every asset comes from the app itself
