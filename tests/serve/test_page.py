"""`ruclip serve --index`: the page's routes, path traversal refused, a folder indexed while serving, and the
page driven in headless Chromium."""
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

import ruclip
from helpers.images import rgb_image
from helpers.library import predictor_for, write_library
from helpers.browser import headless_chromium
from helpers.serving import get, live

pytest.importorskip('fastapi')  # the [serve] extra
from ruclip.serve import create_app  # noqa: E402

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
    with live(create_app(index=index)) as url:
        yield url, index, files, folder


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
    for row_id, path in [(hit.id, hit.path) for hit in index.search('кошка', k=30)][:6]:
        with urllib.request.urlopen(f'{url}/image/{row_id}') as response:  # its real type, whatever its name
            assert response.headers['Content-Type'] == ('image/png' if path.endswith('.png') else 'image/jpeg')
    for bad, message in [('/api/search?q=%20', 'empty or blank'), ('/api/search?q=x&k=0', 'k: Input should be'),
                         ('/api/similar?id=abc', 'id: Input should be a valid integer')]:
        status, body = get(url + bad)
        assert status == 400 and message in json.loads(body)['error']['message']
    status, body = get(f'{url}/api/search?k=3', data=b'not an image')
    assert status == 400 and 'cannot read image' in json.loads(body)['error']['message']


def test_nothing_outside_the_index_is_served(served):
    url, index, _, folder = served
    outside = next(hit.id for hit in index.search('кошка', k=40) if hit.path.endswith('outside.png'))
    for path in [f'/thumb/{outside}', f'/image/{outside}', '/thumb/99999', '/image/../../etc/passwd',
                 '/thumb/%2e%2e%2fsecret.png', f'/image/{folder}/secret.png', '/static/../server.py', '/../../',
                 '/image/-1', '/image/1.0', '/app.js/../server.py', '/image/99999999999999999999999999']:
        status, body = get(url + path)
        assert status in (400, 404), path
        assert json.loads(body)['error']['message'] and b'PNG' not in body and b'import' not in body


def test_a_folder_indexed_while_serving_is_served(served, tiny_checkpoint):
    url, index, _, folder = served
    new = write_library(folder / 'later', 2, size=(50, 40), start_seed=100)
    other = ruclip.ImageIndex(index.path, predictor_for(tiny_checkpoint))  # another process's `ruclip index`, say
    other.update([folder / 'later'])
    row_id = next(hit.id for hit in other.search('кошка', k=len(other)) if hit.path == new[0])
    status, body = get(f'{url}/thumb/{row_id}')
    assert status == 200 and body[:2] == b'\xff\xd8'
    status, body = get(f'{url}/api/similar?id={row_id}&k=1')
    assert json.loads(body)['results'][0]['path'] == new[0]


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
    url, index, files, _ = served
    with headless_chromium(tmp_path / 'profile') as browser:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys
        from selenium.webdriver.support.ui import WebDriverWait

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
        wait.until(lambda driver: browser.find_element(By.ID, 'tag-filter').get_attribute('data-asked'))
        assert not browser.find_element(By.ID, 'tag-filter').is_displayed()  # an untagged index: no tag widgets
        assert browser.find_elements(By.CSS_SELECTOR, '.tag') == []
        if os.environ.get('RUCLIP_SCREENSHOT'):  # make the README's picture: RUCLIP_SCREENSHOT=1 pytest ...
            from PIL import Image
            browser.save_screenshot(str(tmp_path / 'page.png'))
            Image.open(tmp_path / 'page.png').convert('RGB').quantize(96).save(PICS / 'search_page.png', optimize=True)
        clicked_path = shown()[5][0]
        browser.find_elements(By.CSS_SELECTOR, '.result .similar')[5].click()
        wait.until(lambda driver: shown() and shown()[0][0] == clicked_path)
        assert shown()[0][1] == pytest.approx(1, abs=1e-3)
        wait.until(loaded)

        def viewer():  # (hidden, the full-size image's natural width, its src, the position line)
            return browser.execute_script(
                "const v = document.getElementById('viewer'), f = document.getElementById('full'); "
                "return [v.hidden, f.complete ? f.naturalWidth : 0, f.getAttribute('src'), "
                "document.getElementById('where').textContent]")

        ids = browser.execute_script("return [...document.querySelectorAll('.result')].map(c => c.dataset.id)")
        browser.find_elements(By.CSS_SELECTOR, '.result img')[2].click()
        wait.until(lambda driver: viewer()[1] == 160)  # whole, not the thumbnail
        assert viewer()[2] == f'image/{ids[2]}' and viewer()[3].startswith('3 из 24')
        browser.find_element(By.TAG_NAME, 'body').send_keys(Keys.ARROW_RIGHT)
        wait.until(lambda driver: viewer()[2] == f'image/{ids[3]}' and viewer()[1] == 160)
        browser.find_element(By.ID, 'previous').click()
        browser.find_element(By.ID, 'previous').click()
        wait.until(lambda driver: viewer()[2] == f'image/{ids[1]}')
        browser.find_element(By.TAG_NAME, 'body').send_keys(Keys.ESCAPE)
        wait.until(lambda driver: viewer()[0])
        browser.find_element(By.ID, 'image').send_keys(files[9])
        wait.until(lambda driver: shown() and shown()[0][0] == files[9])
        wait.until(loaded)
        broken = tmp_path / 'broken.jpg'
        broken.write_bytes(b'not a jpeg')
        browser.find_element(By.ID, 'image').send_keys(str(broken))
        status = browser.find_element(By.ID, 'status')
        wait.until(lambda driver: 'Не удалось прочитать изображение' in status.text)
        assert shown() == []  # the earlier results are gone, not left under the error
        assert status.value_of_css_property('color') in ('rgb(170, 0, 0)', 'rgba(170, 0, 0, 1)')  # shown as an error
        query = browser.find_element(By.ID, 'query')
        query.clear()
        query.send_keys('   \n')
        wait.until(lambda driver: 'Введите слова для поиска' in status.text)
        query.clear()
        query.send_keys('собака\n')
        wait.until(lambda driver: len(shown()) == 24 and 'error' not in status.get_attribute('class'))


def test_an_example_image_over_the_pixel_limit_is_refused(served):
    from fastapi.testclient import TestClient

    _, index, files, _ = served
    with TestClient(create_app(index=index, max_pixels=100 * 100), base_url='http://127.0.0.1') as client:
        response = client.post('/api/search?k=3', content=open(files[0], 'rb').read())  # 160 x 120
        assert response.status_code == 400 and response.json()['error']['code'] == 'image_too_large'
        response = client.post('/api/search?k=3', content=b'')
        assert response.status_code == 400 and response.json()['error']['code'] == 'empty_image'
