"""`ruclip serve`: the HTTP routes, path traversal refused, and the page driven in headless Chromium."""
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import ruclip
from helpers.images import rgb_image
from helpers.library import predictor_for, write_library
from ruclip.search.web.server import make_server

CHROMIUM, CHROMEDRIVER = '/usr/bin/chromium', '/usr/bin/chromedriver'
PICS = Path(__file__).resolve().parents[2] / 'pics'


@pytest.fixture(scope='module')
def served(tmp_path_factory, tiny_checkpoint):
    folder = tmp_path_factory.mktemp('serve')
    files = write_library(folder / 'photos', 30, size=(160, 120))
    secret = folder / 'secret.png'
    rgb_image(20, 20, seed=5).save(secret)
    os.symlink(secret, folder / 'photos' / 'album0' / 'outside.png')  # a symlink out of the indexed folder
    index = ruclip.ImageIndex(folder / 'photos.index', predictor_for(tiny_checkpoint))
    index.update([folder / 'photos'])
    server = make_server(index, '127.0.0.1', 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{server.server_address[1]}', index, files, folder
    server.shutdown()
    server.server_close()


def get(url, data=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_routes_answer_as_the_index_does(served):
    url, index, files, _ = served
    status, body = get(f'{url}/api/search?q=%D0%BA%D0%BE%D1%88%D0%BA%D0%B0&k=5')  # кошка
    assert status == 200
    assert [hit['path'] for hit in json.loads(body)['results']] == [hit.path for hit in index.search('кошка', k=5)]
    status, body = get(f'{url}/api/search?k=3', data=open(files[4], 'rb').read())
    assert status == 200 and json.loads(body)['results'][0]['path'] == files[4]
    first = json.loads(body)['results'][0]['id']
    status, body = get(f'{url}/api/similar?id={first}&k=2')
    assert status == 200 and json.loads(body)['results'][0]['score'] == pytest.approx(1, abs=1e-4)
    status, body = get(f'{url}/thumb/{first}')
    assert status == 200 and body[:2] == b'\xff\xd8'
    assert get(f'{url}/image/{first}') == (200, open(files[4], 'rb').read())
    for bad, message in [('/api/search?q=%20', 'empty or blank'), ('/api/search?q=x&k=0', 'k must be'),
                         ('/api/similar?id=abc', 'whole number')]:
        status, body = get(url + bad)
        assert status == 400 and message in json.loads(body)['error']
    status, body = get(f'{url}/api/search?k=3', data=b'not an image')
    assert status == 400 and 'cannot read image' in json.loads(body)['error']


def test_nothing_outside_the_index_is_served(served):
    url, index, _, folder = served
    outside = next(hit.id for hit in index.search('кошка', k=40) if hit.path.endswith('outside.png'))
    for path in [f'/thumb/{outside}', f'/image/{outside}', '/thumb/99999', '/image/../../etc/passwd',
                 '/thumb/%2e%2e%2fsecret.png', f'/image/{folder}/secret.png', '/static/../server.py', '/../../',
                 '/image/-1', '/image/1.0', '/app.js/../server.py']:
        status, body = get(url + path)
        assert status == 404, path
        assert b'PNG' not in body and b'import' not in body


def test_ruclip_serve_command_serves_the_page(served, tiny_checkpoint):
    _, index, _, _ = served
    command = [sys.executable, '-m', 'ruclip', 'serve', '--index', index.path, '--port', '0', '--model',
               str(tiny_checkpoint)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=os.getcwd()))
    try:
        line = process.stdout.readline()
        assert line.startswith(f'serving {index.path} at http://127.0.0.1:'), line
        url = line.split(' at ')[1].split()[0].rstrip('/')
        status, body = get(url + '/')
        assert status == 200 and b'<input id="query"' in body
        status, body = get(url + '/api/search?q=%D0%BA%D0%BE%D1%82&k=3')  # кот
        assert [hit['path'] for hit in json.loads(body)['results']] == [hit.path for hit in index.search('кот', k=3)]
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow  # a browser starts
def test_page_in_headless_chromium(served, tmp_path):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip('not installed: Debian\'s chromium and chromium-driver packages, which the README\'s set-up '
                    'command installs (apt-get install chromium chromium-driver)')
    webdriver = pytest.importorskip('selenium.webdriver')
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, index, files, _ = served
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync',
                 '--window-size=1100,800', f'--user-data-dir={tmp_path / "profile"}']:
        options.add_argument(flag)
    browser = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    try:
        browser.set_page_load_timeout(30)
        browser.get(url + '/')
        wait = WebDriverWait(browser, 20)

        def shown():  # (path, score) of each card, read in one go: the page replaces them on each search
            return [tuple(row) for row in browser.execute_script(
                "return [...document.querySelectorAll('.result')].map(c => [c.dataset.path, +c.dataset.score])")]

        def loaded(driver):  # every thumbnail decoded
            return driver.execute_script(
                "const images = [...document.querySelectorAll('.result img')]; "
                "return images.length > 0 && images.every(i => i.complete && i.naturalWidth > 0)")

        browser.find_element(By.ID, 'query').send_keys('кошка на диване\n')
        wait.until(lambda driver: len(shown()) == 24)
        wait.until(loaded)
        assert [path for path, _ in shown()] == [hit.path for hit in index.search('кошка на диване', k=24)]
        assert 'кошка на диване' in browser.find_element(By.ID, 'status').text
        if os.environ.get('RUCLIP_SCREENSHOT'):  # make the README's picture: RUCLIP_SCREENSHOT=1 pytest ...
            from PIL import Image
            browser.save_screenshot(str(tmp_path / 'page.png'))
            Image.open(tmp_path / 'page.png').convert('RGB').quantize(96).save(PICS / 'search_page.png', optimize=True)
        clicked_path = shown()[5][0]
        browser.find_elements(By.CSS_SELECTOR, '.result')[5].click()
        wait.until(lambda driver: shown() and shown()[0][0] == clicked_path)
        assert shown()[0][1] == pytest.approx(1, abs=1e-3)
        browser.find_element(By.ID, 'image').send_keys(files[9])
        wait.until(lambda driver: shown() and shown()[0][0] == files[9])
        wait.until(loaded)
        broken = tmp_path / 'broken.jpg'
        broken.write_bytes(b'not a jpeg')
        browser.find_element(By.ID, 'image').send_keys(str(broken))
        wait.until(lambda driver: 'cannot read image' in driver.find_element(By.ID, 'status').text)
    finally:
        browser.quit()
