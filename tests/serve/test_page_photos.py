"""The search page's photo-library parts (issue 22 on the page of issue 21): a date range and a sort order
applied to the three searches before the top k, each result's date, camera and tags, a tag filter, the
duplicate groups, their API routes with 4xx answers for bad values, and all of it in headless Chromium."""
import datetime
import json
import os
import shutil
import sqlite3
import urllib.parse

import numpy as np
import pytest

import ruclip
from helpers.library import predictor_for
from helpers.photos import exif, photo_like
from helpers.browser import headless_chromium
from helpers.serving import get, live

pytest.importorskip('fastapi')  # the [serve] extra
from ruclip.search.duplicate_calibration import duplicate_threshold  # noqa: E402
from ruclip.serve import create_app  # noqa: E402


TAKEN = {  # file: (EXIF DateTimeOriginal, OffsetTimeOriginal, camera)
    'a.jpg': ('2022:12:31 23:59:00', '+03:00', None), 'b.jpg': ('2023:01:15 10:00:00', None, 'Pixel 8'),
    'c.jpg': ('2023:03:01 00:00:00', '-05:00', None), 'd.jpg': ('2023:06:30 12:00:00', None, 'Pixel 8'),
    'e.jpg': ('2023:08:31 23:59:59', '+09:00', None), 'f.jpg': ('2023:09:01 00:00:00', None, None),
}
MTIMES = {  # files without EXIF: the file's time (local, as a camera's clock), which the index marks 'mtime'
    'g.png': datetime.datetime(2023, 5, 5, 12, 0),
    'original.jpg': datetime.datetime(2021, 7, 1, 9, 0), 'small.jpg': datetime.datetime(2021, 7, 2, 9, 0),
    'resaved.jpg': datetime.datetime(2021, 7, 3, 9, 0), 'other.png': datetime.datetime(2023, 10, 10, 10, 0),
    'other copy.png': datetime.datetime(2024, 1, 1, 8, 30),
}
TRIO = ['original.jpg', 'resaved.jpg', 'small.jpg']  # a picture, its re-save, its resize: the one to keep first
TAGS = {  # file: its tags, best first, as `ruclip tag` stores them (the scoring is tests/search's; a tiny model
    'a.jpg': ['кошка', 'море'], 'b.jpg': ['кошка'], 'd.jpg': ['море', 'собака'],  # of random weights gives
    'g.png': ['море'], 'original.jpg': ['кошка', 'диван'], 'other.png': ['собака'],  # every photo the same tag)
}


def picture(path: str) -> str:
    """The file's name, the same for exact copies (their scores tie, in either order)."""
    return os.path.basename(path).replace(' copy', '')


def wall_clock(name: str) -> datetime.datetime:
    if name in MTIMES:
        return MTIMES[name]
    return datetime.datetime.strptime(TAKEN[name][0], '%Y:%m:%d %H:%M:%S')


@pytest.fixture(scope='module')
def library(tmp_path_factory, tiny_checkpoint):
    """(url, index, folder, tags by name) of a served, tagged index of dated photos and duplicates."""
    folder = tmp_path_factory.mktemp('photos')
    photos = folder / 'photos'
    photos.mkdir()
    for seed, (name, (taken, offset, camera)) in enumerate(TAKEN.items()):
        photo_like(96, 72, seed=seed).save(photos / name, exif=exif(taken, offset, camera=camera))
    photo_like(96, 72, seed=20).save(photos / 'g.png')
    picture = photo_like(160, 120, seed=21)
    picture.save(photos / 'original.jpg', quality=95)
    picture.resize((80, 60)).save(photos / 'small.jpg', quality=95)
    picture.save(photos / 'resaved.jpg', quality=60)
    photo_like(160, 120, seed=22).save(photos / 'other.png')
    shutil.copy(photos / 'other.png', photos / 'other copy.png')
    for name, moment in MTIMES.items():
        os.utime(photos / name, (moment.timestamp(),) * 2)
    index = ruclip.ImageIndex(folder / 'photos.index', predictor_for(tiny_checkpoint))
    index.update([photos])
    with sqlite3.connect(index.path) as connection:  # the rows `ruclip tag` would write
        rows = connection.execute('SELECT id, path FROM images').fetchall()
        ids = {os.path.basename(os.fsdecode(path)): row_id for row_id, path in rows}
        connection.executemany('INSERT INTO tags VALUES (?, ?, ?)', [(ids[name], tag, 0.9 - 0.1 * place)
                                                                     for name, tags in TAGS.items()
                                                                     for place, tag in enumerate(tags)])
    connection.close()
    with live(create_app(index=index)) as url:
        yield url, index, folder, {name: set(tags) for name, tags in TAGS.items()}


def api(url, path, data=None):
    status, body = get(url + path, data)
    return status, json.loads(body)


def query(**parameters) -> str:
    return urllib.parse.urlencode(parameters, doseq=True)


RANGES = [('2023-01-01', '2023-09-01'), ('2023-03-01', None), (None, '2023-03-01T00:00:01'),
          ('2023-05-05', '2023-05-06'), ('2021-07-02', '2021-07-03T09:00'), ('2030-01-01', None)]


def in_range(name: str, after, before) -> bool:
    low = datetime.datetime.fromisoformat(after) if after else datetime.datetime.min
    high = datetime.datetime.fromisoformat(before) if before else datetime.datetime.max
    return low <= wall_clock(name) < high


def test_date_filters_equal_a_brute_force_filtered_ranking(library):
    url, index, folder, _ = library
    image = open(folder / 'photos' / 'd.jpg', 'rb').read()
    similar_to = next(hit.id for hit in index.search('кошка', k=len(index)) if hit.path.endswith('b.jpg'))
    searches = [('/api/search', dict(q='кошка'), None, index.search('кошка', k=len(index))),
                ('/api/search', {}, image, index.search(image, k=len(index))),
                ('/api/similar', dict(id=similar_to), None, index.similar(similar_to, k=len(index)))]
    for path, own, body, everything in searches:
        for after, before in RANGES:
            dates = {key: value for key, value in (('after', after), ('before', before)) if value}
            expected = [picture(hit.path) for hit in everything
                        if in_range(os.path.basename(hit.path), after, before)]
            status, answer = api(url, f'{path}?{query(k=3, **own, **dates)}', body)
            assert status == 200, answer
            assert [picture(hit['path']) for hit in answer['results']] == expected[:3], (path, after, before)
            assert answer['kept'] == len(expected) and answer['size'] == len(index) == 12
    status, answer = api(url, f'/api/search?{query(q="кошка", k=3)}')
    assert answer['kept'] is None and len(answer['results']) == 3  # no filter


def test_each_result_says_when_and_by_what_and_sorts_by_date(library):
    url, index, _, tags = library
    status, answer = api(url, f'/api/search?{query(q="кошка", k=12, sort="date")}')
    assert status == 200
    names = [hit['name'] for hit in answer['results']]
    assert names == sorted(names, key=wall_clock)
    by_score = [hit.path for hit in index.search('кошка', k=12)]
    assert [hit['rank'] for hit in answer['results']] == [by_score.index(hit['path']) + 1 for hit in answer['results']]
    hits = {hit['name']: hit for hit in answer['results']}
    assert hits['a.jpg']['taken'] == '2022-12-31T23:59:00+03:00' and hits['a.jpg']['taken_from'] == 'exif'
    assert hits['b.jpg']['camera'] == 'Pixel 8' and hits['a.jpg']['camera'] is None
    assert hits['g.png']['taken_from'] == 'mtime' and hits['g.png']['taken'].startswith('2023-05-05T12:00:00')
    assert (hits['original.jpg']['width'], hits['original.jpg']['height']) == (160, 120)
    assert {name: hit['tags'] for name, hit in hits.items() if hit['tags']} == TAGS  # best first


def test_the_tag_filter_keeps_the_photos_with_every_tag_asked(library):
    url, index, _, tags = library
    status, answer = api(url, '/api/tags')
    counts = {}
    for carried in tags.values():
        for tag in carried:
            counts[tag] = counts.get(tag, 0) + 1
    assert status == 200 and {row['tag']: row['count'] for row in answer['tags']} == counts
    assert [row['count'] for row in answer['tags']] == sorted(counts.values(), reverse=True)
    assert any(0 < count < len(index) for count in counts.values())  # some tag parts the library
    everything = [hit.path for hit in index.search('кошка', k=len(index))]
    asked = [[tag] for tag in counts] + [sorted(counts)[:2], ['нет такого тега']]
    for wanted in asked:
        expected = [picture(path) for path in everything if set(wanted) <= tags.get(os.path.basename(path), set())]
        status, answer = api(url, f'/api/search?{query(q="кошка", k=4, tag=wanted)}')
        assert status == 200 and [picture(hit['path']) for hit in answer['results']] == expected[:4], wanted
        assert answer['kept'] == len(expected)


def test_duplicate_groups(library):
    url, index, folder, _ = library
    with index._lock:
        stored = index._latents()
        names = {row_id: os.path.basename(os.fsdecode(path))
                 for row_id, path in index._connection.execute('SELECT id, path FROM images')}
    position = {names[int(row_id)]: p for p, row_id in enumerate(stored.ids)}
    cosines = stored.latents.astype(np.float32) @ stored.latents.astype(np.float32).T
    alike = min(cosines[position[a], position[b]] for a in TRIO for b in TRIO)
    copies = {'other.png', 'other copy.png'}
    apart = max(cosines[position[a], position[b]] for a in position for b in position
                if a != b and not {a, b} <= set(TRIO) and {a, b} != copies)
    assert alike > apart, (alike, apart)  # this model tells them apart: a threshold between the two groups them
    threshold = float((alike + apart) / 2)
    status, answer = api(url, f'/api/duplicates?threshold={threshold!r}')
    assert status == 200 and answer['size'] == len(index)
    assert answer['threshold'] == dict(value=threshold, source='given', explanation=f'threshold {threshold} given')
    groups = [[photo['name'] for photo in group['photos']] for group in answer['groups']]
    assert groups == [TRIO, ['other.png', 'other copy.png']]  # largest first, the one to keep first
    assert [group['exact'] for group in answer['groups']] == [False, True]
    for group in answer['groups']:
        assert [photo['keep'] for photo in group['photos']] == [True] + [False] * (len(group['photos']) - 1)
        assert group['keep'] == group['photos'][0]['id']
        status, body = get(f"{url}/thumb/{group['keep']}")
        assert status == 200 and body[:2] == b'\xff\xd8'
    assert answer['groups'][0]['photos'][0]['path'] == str(folder / 'photos' / 'original.jpg')
    status, answer = api(url, '/api/duplicates')  # the index's measured threshold: exact copies group whatever it is
    assert status == 200 and answer['threshold']['source'] == 'measured', answer['threshold']
    assert 'measured now' in answer['threshold']['explanation']
    stored = duplicate_threshold(index)  # the page's request measured it and stored it in the index
    assert stored.source == 'stored' and stored.value == answer['threshold']['value']
    assert ['other.png', 'other copy.png'] in [[photo['name'] for photo in group['photos']]
                                               for group in answer['groups']]


@pytest.mark.parametrize('path, code, message', [
    ('/api/search?q=x&after=31.12.2023', 'invalid_date', "after '31.12.2023': expected a date as YYYY-MM-DD"),
    ('/api/search?q=x&before=2023-13-01', 'invalid_date', "before '2023-13-01': expected a date as YYYY-MM-DD"),
    ('/api/similar?id=1&after=yesterday', 'invalid_date', 'expected a date as YYYY-MM-DD'),
    ('/api/search?q=x&after=2023-05-01&before=2023-04-01', 'invalid_date', 'is not earlier than before'),
    ('/api/search?q=x&after=2023-05-01&before=2023-05-01', 'invalid_date', 'is not earlier than before'),
    ('/api/search?q=x&sort=name', 'invalid_request', "sort: Input should be 'score' or 'date'"),
    ('/api/search?q=x&tag=%20', 'invalid_tag', 'tag must not be empty or blank'),
    ('/api/duplicates?threshold=2', 'invalid_request', 'threshold: Input should be less than or equal to 1'),
    ('/api/duplicates?threshold=0.1', 'invalid_request', 'threshold: Input should be greater than or equal to 0.5'),
    ('/api/duplicates?threshold=nan', 'invalid_request', 'threshold'),
    ('/api/duplicates?threshold=abc', 'invalid_request', 'threshold: Input should be a valid number'),
])
def test_bad_values_are_refused_by_name(library, path, code, message):
    status, answer = api(library[0], path)
    assert status == 400 and answer['error']['code'] == code and message in answer['error']['message'], answer


def test_an_example_image_with_a_bad_date_is_refused(library):
    url, _, folder, _ = library
    status, answer = api(url, '/api/search?k=3&before=2023-02-30', open(folder / 'photos' / 'a.jpg', 'rb').read())
    assert status == 400 and "before '2023-02-30'" in answer['error']['message']


def test_the_schema_documents_the_filters(library):
    status, schema = api(library[0], '/openapi.json')
    for path in ['/api/search', '/api/similar']:
        parameters = {parameter['name']: parameter for parameter in schema['paths'][path]['get']['parameters']}
        assert {'after', 'before', 'tag', 'sort'} <= set(parameters)
        assert 'YYYY-MM-DD' in parameters['after']['description']
    assert {'after', 'before', 'tag', 'sort'} <= {parameter['name'] for parameter
                                                  in schema['paths']['/api/search']['post']['parameters']}
    assert 'threshold' in {parameter['name'] for parameter in schema['paths']['/api/duplicates']['get']['parameters']}
    assert '/api/tags' in schema['paths']


@pytest.mark.slow  # a browser starts
def test_dates_tags_and_duplicates_in_headless_chromium(library, tmp_path):
    url, index, _, tags = library
    with headless_chromium(tmp_path / 'profile') as browser:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        browser.get(url + '/')
        wait = WebDriverWait(browser, 20)
        status = browser.find_element(By.ID, 'status')

        def shown():  # (name, date shown, where the date is from) of each card, read in one go
            return [tuple(row) for row in browser.execute_script(
                "return [...document.querySelectorAll('.result')].map(c => [c.dataset.path.split('/').pop(), "
                "c.querySelector('.taken').textContent, c.querySelector('.taken').dataset.takenFrom])")]

        def choose(field, value):  # as a user picking a date or an order: the value, then a change event
            browser.execute_script("const f = document.getElementById(arguments[0]); f.value = arguments[1]; "
                                   "f.dispatchEvent(new Event('change'))", field, value)

        wait.until(lambda driver: not browser.find_element(By.ID, 'tag-filter').get_attribute('hidden'))
        everything = [os.path.basename(hit.path) for hit in index.search('кошка', k=len(index))]
        browser.find_element(By.ID, 'query').send_keys('кошка\n')
        wait.until(lambda driver: [name for name, _, _ in shown()] == everything)
        dates = dict((name, (taken, source)) for name, taken, source in shown())
        assert dates['b.jpg'] == ('15.01.2023 10:00', 'exif')
        assert dates['g.png'] == ('05.05.2023 12:00 (дата файла)', 'mtime')  # the file's time, said so
        choose('after', '2023-01-01')
        choose('before', '2023-08-31')  # the last day wanted: e.jpg, taken that evening, is kept
        expected = [name for name in everything if in_range(name, '2023-01-01', '2023-09-01')]
        wait.until(lambda driver: [name for name, _, _ in shown()] == expected)
        assert 'e.jpg' in expected and 'f.jpg' not in expected
        assert f'«кошка»: {len(expected)}; под фильтр подходят {len(expected)} из 12 фото' in status.text
        choose('sort', 'date')
        wait.until(lambda driver: [name for name, _, _ in shown()] == sorted(expected, key=wall_clock))
        browser.find_element(By.ID, 'reset').click()
        wait.until(lambda driver: [name for name, _, _ in shown()] == everything)

        tag = next(tag for tag in sorted({tag for carried in tags.values() for tag in carried})
                   if 0 < sum(tag in carried for carried in tags.values()) < len(index))
        browser.find_element(By.CSS_SELECTOR, f'.result .tags .tag[data-tag="{tag}"]').click()
        tagged = [name for name in everything if tag in tags.get(name, set())]
        wait.until(lambda driver: [name for name, _, _ in shown()] == tagged)
        assert browser.find_element(By.CSS_SELECTOR, f'#active-tags .tag[data-tag="{tag}"]').is_displayed()
        browser.find_element(By.CSS_SELECTOR, f'#active-tags .tag[data-tag="{tag}"]').click()  # removed
        wait.until(lambda driver: [name for name, _, _ in shown()] == everything)

        browser.find_element(By.ID, 'show-duplicates').click()

        def groups():  # [[(name, kept), ...], exact] of each group shown
            return browser.execute_script(
                "return [...document.querySelectorAll('.group')].map(g => [[...g.querySelectorAll('.member')]"
                ".map(m => [m.dataset.path.split('/').pop(), m.classList.contains('keep')]), g.dataset.exact])")

        wait.until(lambda driver: groups())
        shown_groups = groups()  # at the module's default threshold, which groups exact copies whatever it is
        copies = next(group for group in shown_groups if ['other.png', True] in group[0])
        assert copies == [[['other.png', True], ['other copy.png', False]], 'true']  # the one to keep, marked
        assert all([kept for _, kept in members] == [True] + [False] * (len(members) - 1)
                   for members, _ in shown_groups)
        assert browser.find_element(By.ID, 'results').get_attribute('hidden') is not None
        assert 'Дубликаты:' in status.text and 'оставить' in browser.find_element(By.CSS_SELECTOR, '.member.keep').text
        browser.find_elements(By.CSS_SELECTOR, '.member img')[0].click()  # the viewer opens a group's photo
        wait.until(lambda driver: driver.execute_script("return !document.getElementById('viewer').hidden"))
