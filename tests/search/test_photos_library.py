"""A photo library's dates, places, near-duplicates and tags (issue 22, parts 4 to 6)."""
import datetime
import json
import os
import sqlite3

import numpy as np
import pytest
import torch

import ruclip
from helpers.cli import run
from helpers.library import predictor_for
from helpers.photos import exif, photo_like, write_near_duplicates
from ruclip.cli import main
from ruclip.search import database

MODEL = ['--backend', 'torch', '--dtype', 'fp32', '-q']


# ---- dates and places ----------------------------------------------------------------------------
TAKEN = {  # file: (EXIF DateTimeOriginal, OffsetTimeOriginal) or None: no EXIF, the file's mtime
    'a.jpg': ('2022:12:31 23:59:00', '+03:00'), 'b.jpg': ('2023:01:15 10:00:00', None),
    'c.jpg': ('2023:03:01 00:00:00', '-05:00'), 'd.jpg': ('2023:06:30 12:00:00', None),
    'e.jpg': ('2023:08:31 23:59:59', '+09:00'), 'f.jpg': ('2023:09:01 00:00:00', None),
    'g.png': None, 'h.jpg': None,
}
MTIMES = {'g.png': datetime.datetime(2023, 5, 5, 12, 0), 'h.jpg': datetime.datetime(2024, 2, 2, 8, 30)}


@pytest.fixture
def dated(tmp_path, tiny_checkpoint, capsys):
    library = tmp_path / 'lib'
    library.mkdir()
    for seed, (name, taken) in enumerate(TAKEN.items()):
        picture = photo_like(96, 72, seed=seed)
        if taken is None:
            picture.save(library / name)
            os.utime(library / name, (MTIMES[name].timestamp(),) * 2)  # local time, as a camera's clock
        else:
            picture.save(library / name, exif=exif(*taken, camera='Pixel 8' if seed % 2 else None,
                                                   gps=(55.7558, 37.6173) if name == 'a.jpg' else None))
    index = tmp_path / 'x.index'
    assert run(capsys, 'index', library, '--index', index, '--model', tiny_checkpoint, *MODEL)[0] == 0
    return library, index


def wall_clock(name) -> datetime.datetime:
    if TAKEN[name] is None:
        return MTIMES[name]
    return datetime.datetime.strptime(TAKEN[name][0], '%Y:%m:%d %H:%M:%S')


def test_date_filters_equal_a_brute_force_filtered_ranking(dated, tiny_checkpoint, capsys):
    library, index_path = dated
    index = ruclip.ImageIndex(index_path, predictor_for(tiny_checkpoint, jpeg_draft=True))  # as the CLI made it
    everything = index.search('кошка', k=100)
    for after, before in [('2023-01-01', '2023-09-01'), ('2023-03-01', None), (None, '2023-03-01T00:00:01'),
                          ('2023-05-05', '2023-05-06'), ('2030-01-01', None)]:
        low = datetime.datetime.fromisoformat(after) if after else datetime.datetime.min
        high = datetime.datetime.fromisoformat(before) if before else datetime.datetime.max
        expected = [hit.path for hit in everything if low <= wall_clock(os.path.basename(hit.path)) < high][:3]
        options = (['--after', after] if after else []) + (['--before', before] if before else [])
        code, out, _ = run(capsys, 'search', 'кошка', '--index', index_path, '--json', '-k', 3, *options)
        assert code == 0
        assert [hit['path'] for hit in json.loads(out)] == expected, (after, before)


def test_each_result_says_when_and_where_and_sorts_by_date(dated, capsys):
    library, index_path = dated
    code, out, _ = run(capsys, 'search', 'кошка', '--index', index_path, '--json', '-k', 8, '--sort', 'date')
    hits = {os.path.basename(hit['path']): hit for hit in json.loads(out)}
    assert [os.path.basename(hit['path']) for hit in json.loads(out)] == sorted(TAKEN, key=wall_clock)
    assert hits['a.jpg']['taken'] == '2022-12-31T23:59:00+03:00' and hits['a.jpg']['taken_from'] == 'exif'
    assert hits['a.jpg']['gps'] == {'latitude': pytest.approx(55.7558, abs=1e-4),
                                    'longitude': pytest.approx(37.6173, abs=1e-4)}
    assert hits['b.jpg']['taken'] == '2023-01-15T10:00:00' and hits['b.jpg']['camera'] == 'Pixel 8'
    assert hits['b.jpg']['gps'] is None and hits['a.jpg']['camera'] is None
    assert hits['g.png']['taken_from'] == 'mtime' and hits['g.png']['taken'].startswith('2023-05-05T12:00:00')
    assert (hits['h.jpg']['width'], hits['h.jpg']['height']) == (96, 72)


def test_a_bad_date_is_refused_by_name(dated, capsys):
    code, _, err = run(capsys, 'search', 'кошка', '--index', dated[1], '--after', '31.12.2023')
    assert code == 2 and "--after '31.12.2023': expected a date as YYYY-MM-DD" in err


def test_an_index_of_format_1_is_read_as_it_is_and_upgraded_by_an_update(dated, tiny_checkpoint, capsys):
    library, index_path = dated
    connection = sqlite3.connect(index_path, isolation_level=None)
    connection.executescript("DROP TABLE photos; DROP TABLE tags; UPDATE meta SET value = '1' WHERE key = 'version'")
    connection.close()
    code, out, _ = run(capsys, 'search', 'кошка', '--index', index_path, '--json', '-k', 8)  # read-only: untouched
    assert code == 0 and {hit['taken_from'] for hit in json.loads(out)} == {'mtime'}
    assert database.meta(sqlite3.connect(index_path), 'version') == 1
    assert run(capsys, 'index', library, '--index', index_path, *MODEL)[0] == 0  # nothing new: upgraded in place
    assert database.meta(sqlite3.connect(index_path), 'version') == database.VERSION == 2
    code, out, _ = run(capsys, 'search', 'кошка', '--index', index_path, '--json', '-k', 8)
    assert sorted(hit['taken_from'] for hit in json.loads(out)) == ['exif'] * 6 + ['mtime'] * 2


# ---- near-duplicates -----------------------------------------------------------------------------
def test_a_picture_its_resize_and_its_resave_group_and_another_does_not(tmp_path, tiny_checkpoint, capsys):
    library = tmp_path / 'lib'
    write_near_duplicates(library)
    index = tmp_path / 'x.index'
    assert run(capsys, 'index', library, '--index', index, '--model', tiny_checkpoint, *MODEL)[0] == 0

    code, out, _ = run(capsys, 'duplicates', '--index', index, '--json')  # the threshold measured for the model
    found = json.loads(out)['groups']
    groups = [[os.path.basename(photo['path']) for photo in group['photos']] for group in found]
    assert code == 0 and groups == [['original.jpg', 'resaved.jpg', 'small.jpg'], ['third.png', 'third copy.png']]
    assert [group['keep'] for group in found] == [str(library / 'original.jpg'), str(library / 'third.png')]
    assert [group['exact_copies'] for group in found] == [False, True]

    code, out, _ = run(capsys, 'duplicates', '--index', index, '--json', '--threshold', '1')
    assert [group['exact_copies'] for group in json.loads(out)['groups']] == [True]  # copies group at any threshold
    code, out, err = run(capsys, 'duplicates', '--index', index)
    assert 'group 1: 3 photos' in out and '2 groups of near-identical photos' in err
    with pytest.raises(SystemExit) as exit:  # argparse's own exit for a bad value
        run(capsys, 'duplicates', '--index', index, '--threshold', '1.5')
    assert exit.value.code == 2 and 'expected a cosine in [-1, 1]' in capsys.readouterr().err


# ---- tags ----------------------------------------------------------------------------------------
VOCABULARY = """# a user's vocabulary
template: фото: {}
кошка
собака
море = морской берег
гора
"""


def test_tags_above_the_threshold_are_stored_and_searched(tmp_path, tiny_checkpoint, capsys):
    vocabulary = tmp_path / 'tags.txt'
    vocabulary.write_text(VOCABULARY, encoding='utf-8')
    predictor = predictor_for(tiny_checkpoint)
    texts = predictor.get_text_latents(['кошка', 'собака', 'морской берег', 'гора'],
                                       templates=['фото: {}'])  # the user vocabulary's texts and template
    # photos whose latents are arranged from the tags' own: a cat, a dog at the sea, a mountain-ish mix, noise
    generator = torch.Generator().manual_seed(0)
    arranged = torch.stack([texts[0], texts[1] + texts[2], 0.3 * texts[3] + texts[0], torch.randn(texts.shape[1],
                                                                                                  generator=generator)])
    arranged = torch.nn.functional.normalize(arranged, dim=-1)
    files = []
    for i in range(len(arranged)):
        files.append(str(tmp_path / f'{i}.png'))
        photo_like(40, 30, seed=i).save(files[-1])
    np.savez(tmp_path / 'x.npz', latents=arranged.numpy(), files=np.array(files), model=np.array('tiny'))
    index = tmp_path / 'x.index'
    assert run(capsys, 'index', '--from-embeddings', tmp_path / 'x.npz', '--index', index, '--model',
               tiny_checkpoint, *MODEL, '--assume-model')[0] == 0  # arranged latents record no model
    code, out, _ = run(capsys, 'tag', '--index', index, '--vocabulary', vocabulary, '--tag-threshold', 0.2)
    assert code == 0 and 'a vocabulary of 4' in out

    probabilities = torch.softmax(100 * arranged @ texts.T, dim=1)  # what the module's doc promises
    names = ['кошка', 'собака', 'море', 'гора']
    expected = {files[i]: [names[j] for j in probabilities[i].argsort(descending=True).tolist()
                           if probabilities[i, j] >= 0.2] for i in range(len(files))}
    assert expected[files[0]][0] == 'кошка' and set(expected[files[1]][:2]) == {'собака', 'море'}
    code, out, _ = run(capsys, 'search', 'кошка', '--index', index, '--json', '-k', 10)
    assert {hit['path']: hit['tags'] for hit in json.loads(out)} == expected
    for tag in names:
        code, out, _ = run(capsys, 'search', 'животное', '--index', index, '--json', '--tag', tag)
        assert sorted(hit['path'] for hit in json.loads(out)) == sorted(f for f in files if tag in expected[f])


def test_the_shipped_vocabulary_and_a_bad_one(tmp_path, tiny_checkpoint, capsys):
    from ruclip.search.tags import read_vocabulary
    shipped = read_vocabulary()
    assert len(shipped.tags) >= 200 and len(set(shipped.tags)) == len(shipped.tags) and shipped.templates
    bad = tmp_path / 'bad.txt'
    bad.write_text('кошка\ntemplate: фото без места\nсобака\n', encoding='utf-8')
    with pytest.raises(ValueError, match=r'bad.txt, line 2: a template holds \{\} once'):
        read_vocabulary(bad)
    photo_like(40, 30, seed=1).save(tmp_path / 'a.png')
    index = tmp_path / 'x.index'
    assert run(capsys, 'index', tmp_path / 'a.png', '--index', index, '--model', tiny_checkpoint, *MODEL)[0] == 0
    code, _, err = run(capsys, 'tag', '--index', index, '--vocabulary', bad)
    assert code == 2 and 'line 2' in err


def test_index_tags_tags_new_photos_with_the_shipped_vocabulary(tmp_path, tiny_checkpoint, capsys):
    from ruclip.search.tags import DEFAULT_THRESHOLD, MAX_TAGS, read_vocabulary
    for seed in range(3):
        photo_like(60, 40, seed=seed).save(tmp_path / f'{seed}.png')
    index = tmp_path / 'x.index'
    code, _, err = run(capsys, 'index', tmp_path, '--index', index, '--model', tiny_checkpoint, '--tags', *MODEL)
    assert code == 0 and 'a vocabulary of 303 on 3 photos' in err
    shipped = set(read_vocabulary().tags)
    rows = sqlite3.connect(index).execute('SELECT id, tag, score FROM tags').fetchall()
    assert rows and all(tag in shipped and score >= DEFAULT_THRESHOLD for _, tag, score in rows)
    assert max(sum(1 for row_id, _, _ in rows if row_id == one) for one, _, _ in rows) <= MAX_TAGS


def test_a_filtered_search_is_exact_even_with_a_faiss_index(dated, tiny_checkpoint):
    library, index_path = dated
    index = ruclip.ImageIndex(index_path, predictor_for(tiny_checkpoint, jpeg_draft=True))
    index.build_approximate('flat')
    from ruclip.search import photos
    only = photos.filtered_ids(index, photos.parse_date('2023-01-01', '--after'), None)
    everything = index.search('кошка', k=100, approximate_search=False)
    start = datetime.datetime(2023, 1, 1)
    expected = [hit.path for hit in everything if wall_clock(os.path.basename(hit.path)) >= start]
    assert [hit.path for hit in index.search('кошка', k=4, only=only, approximate_search=True)] == expected[:4]


def test_exact_decode_is_for_sharded_output(tmp_path, tiny_checkpoint, capsys):
    photo_like(60, 40, seed=1).save(tmp_path / 'a.jpg')
    code, _, err = run(capsys, 'embed', tmp_path / 'a.jpg', '--out', tmp_path / 'x.npz', '--exact-decode',
                       '--model', tiny_checkpoint)
    assert code == 2 and '--exact-decode is for sharded output' in err


def test_the_photo_library_guide_commands_run(tmp_path, monkeypatch, hub_with_all_models, capsys):
    """docs/photos.md's first block, as a user pastes it, in a home folder holding ~/Pictures."""
    import shlex
    from helpers.doc_blocks import DOCS, code_blocks
    block = code_blocks(DOCS / 'photos.md', 'Your photo library', 'bash')[0]
    monkeypatch.setenv('HOME', str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('RUCLIP_INDEX', raising=False)
    monkeypatch.delenv('XDG_DATA_HOME', raising=False)
    (tmp_path / 'Pictures').mkdir()
    for seed in range(4):
        photo_like(80, 60, seed=seed).save(tmp_path / 'Pictures' / f'{seed}.jpg',
                                           exif=exif(f'2024:0{seed + 5}:10 12:00:00'))
    (tmp_path / 'my-tags.txt').write_text('template: фото: {}\nкошка\nсобака\nпляж\n', encoding='utf-8')
    ran = 0
    for line in block.splitlines():
        command = line.split('  #')[0].strip()
        if command.startswith('ruclip '):
            arguments = [str(tmp_path) + arg[1:] if arg.startswith('~/') else arg for arg in shlex.split(command)[1:]]
            assert main(arguments) == 0, command
            ran += 1
    assert ran == 5
