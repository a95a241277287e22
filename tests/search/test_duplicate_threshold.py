"""`ruclip duplicates`' threshold, measured for the index's model on its own photos and stored in the index."""
import json
import os
import sqlite3

import pytest

import ruclip
from helpers.cli import run
from helpers.library import predictor_for
from helpers.photos import photo_like, write_near_duplicates
from ruclip.search import database
from ruclip.search.duplicate_calibration import (FALLBACK_THRESHOLD, META_KEY, choose_threshold, duplicate_threshold,
                                                 reencoding_threshold)
from ruclip.search.duplicates import find_duplicates

MODEL = ['--backend', 'torch', '--dtype', 'fp32', '-q']


@pytest.fixture
def library(tmp_path, tiny_checkpoint, capsys):
    """A drawn picture, its half-size resize and its re-save at quality 60, two other pictures, and an
    exact copy of one of them, indexed with the tiny model (JPEG draft decoding, as the CLI does)."""
    folder = tmp_path / 'lib'
    write_near_duplicates(folder)
    index = tmp_path / 'x.index'
    assert run(capsys, 'index', folder, '--index', index, '--model', tiny_checkpoint, *MODEL)[0] == 0
    return folder, index


def names(groups):
    return [sorted(os.path.basename(photo.path) for photo in group.photos) for group in groups]


def unusable():
    raise AssertionError('the model was loaded')


def stored_record(index_path):
    return database.meta(sqlite3.connect(index_path), META_KEY)


def test_the_measured_threshold_groups_re_encodings_and_not_another_picture(library, capsys):
    folder, index = library
    code, out, err = run(capsys, 'duplicates', '--index', index, '--json')
    result = json.loads(out)
    threshold = result['threshold']
    assert code == 0 and threshold['source'] == 'measured' and threshold['explanation'] in err
    groups = [sorted(os.path.basename(photo['path']) for photo in group['photos']) for group in result['groups']]
    assert groups == [['original.jpg', 'resaved.jpg', 'small.jpg'], ['third copy.png', 'third.png']]
    # the rule, applied to the numbers it reports: 5 distinct photos sampled, 3 drawn variants each
    record = stored_record(index)
    assert len(record['sample']) == 5 and all(len(cosines) == 5 for cosines in record['cosines'].values())
    assert threshold['value'] == reencoding_threshold(record['cosines']['re-save'] + record['cosines']['half size'])
    assert threshold['measured']['lowest']['re-save'] == round(min(record['cosines']['re-save']), 6)
    assert not threshold['measured']['overlap'] and threshold['measured']['linked'] == 3  # the first group
    assert 're-saves and resizes group' in err and f"threshold {threshold['value']:.6f}" in err
    assert err.startswith("ruclip duplicates: measuring the threshold for this index's model")  # before the pause

    code, out, err = run(capsys, 'duplicates', '--index', index)  # the table: stored, same threshold
    assert code == 0 and 'measured earlier, stored in the index' in err and 'measuring' not in err
    assert f"group 1: 3 photos (cosine >= {threshold['value']:g})" in out
    assert '2 groups of near-identical photos; 3 photos besides' in err


def test_the_stored_threshold_is_reused_without_the_model(library, tiny_checkpoint):
    folder, index_path = library
    with ruclip.ImageIndex(index_path, predictor_for(tiny_checkpoint, jpeg_draft=True)) as index:
        measured = duplicate_threshold(index)
    assert measured.source == 'measured' and stored_record(index_path) is not None
    with ruclip.ImageIndex(index_path, unusable) as index:  # any use of the model fails the test
        again = duplicate_threshold(index)
        groups = find_duplicates(index)
    assert (again.source, again.value) == ('stored', measured.value)
    assert names(groups) == [['original.jpg', 'resaved.jpg', 'small.jpg'], ['third copy.png', 'third.png']]


def test_it_is_measured_again_for_another_model_identity_or_a_changed_sample(library, tiny_checkpoint):
    folder, index_path = library
    loads = []

    def counted():
        loads.append(1)
        return predictor_for(tiny_checkpoint, jpeg_draft=True)

    with ruclip.ImageIndex(index_path, counted) as index:
        first = duplicate_threshold(index)
    record = stored_record(index_path)
    connection = sqlite3.connect(index_path, isolation_level=None)
    connection.execute('UPDATE meta SET value = ? WHERE key = ?',
                       (json.dumps(dict(record, model='another model', cosines={k: [0.5] * 5 for k in
                                                                                  record['cosines']})), META_KEY))
    with ruclip.ImageIndex(index_path, counted) as index:
        again = duplicate_threshold(index)
    assert (first.source, again.source, len(loads)) == ('measured', 'measured', 2)
    assert again.value == first.value and stored_record(index_path) == record

    row_id = record['sample'][0][0]  # a sample photo's stored latent changes (re-embedded): measured again
    latent = connection.execute('SELECT latent FROM images WHERE id = ?', (row_id,)).fetchone()[0]
    with database.transaction(connection):
        connection.execute('UPDATE images SET latent = ? WHERE id = ?', (latent[4:] + latent[:4], row_id))
    with ruclip.ImageIndex(index_path, counted) as index:
        assert duplicate_threshold(index).source == 'measured' and len(loads) == 3


def test_a_given_threshold_needs_no_measurement(library, capsys):
    folder, index_path = library
    with ruclip.ImageIndex(index_path, unusable) as index:
        assert names(find_duplicates(index, threshold=1.0)) == [['third copy.png', 'third.png']]
        assert names(find_duplicates(index, 0.5))[0] == sorted(os.listdir(folder))  # everything
    code, out, err = run(capsys, 'duplicates', '--index', index_path, '--json', '--threshold', '0.5')
    assert code == 0 and json.loads(out)['threshold'] == dict(
        value=0.5, source='given', explanation='threshold 0.5, given with --threshold', measured=None)
    assert stored_record(index_path) is None


def test_unreadable_photos_fall_back_and_say_so_without_the_model(library, capsys):
    folder, index_path = library
    for name in os.listdir(folder):
        if name != 'other.jpg':
            os.remove(folder / name)
    with open(folder / 'other.jpg', 'ab') as file:  # changed since it was indexed: its latent is of other pixels
        file.write(b'\0')
    with ruclip.ImageIndex(index_path, unusable) as index:
        threshold = duplicate_threshold(index)
        assert names(find_duplicates(index)) == names(find_duplicates(index, FALLBACK_THRESHOLD))
    assert (threshold.value, threshold.source) == (FALLBACK_THRESHOLD, 'fallback')
    assert 'could be read as they were indexed' in threshold.explanation and 'nothing stored' in threshold.explanation
    assert stored_record(index_path) is None


def test_an_index_of_one_photo_has_nothing_to_compare(tmp_path, tiny_checkpoint, capsys):
    photo_like(64, 48, seed=1).save(tmp_path / 'a.jpg')
    index_path = tmp_path / 'x.index'
    assert run(capsys, 'index', tmp_path / 'a.jpg', '--index', index_path, '--model', tiny_checkpoint, *MODEL)[0] == 0
    with ruclip.ImageIndex(index_path, unusable) as index:
        assert find_duplicates(index) == []
        assert 'holds 1 photo(s): nothing to compare' in duplicate_threshold(index).explanation


def test_without_a_predictor_the_error_says_what_to_give(library):
    with ruclip.ImageIndex(library[1]) as index, pytest.raises(ValueError, match='give ImageIndex a predictor, or '
                                                                                 'give a threshold'):
        find_duplicates(index)


def test_a_read_only_index_is_measured_but_not_stored(library, tiny_checkpoint, caplog):
    folder, index_path = library
    with ruclip.ImageIndex(index_path, predictor_for(tiny_checkpoint, jpeg_draft=True), readonly=True) as index:
        assert duplicate_threshold(index).source == 'measured'
    assert stored_record(index_path) is None and 'cannot be stored (it was opened read-only)' in caplog.text


def test_the_rule_raises_the_threshold_when_different_photos_are_as_close_as_re_encodings():
    assert choose_threshold([0.999, 0.9995], [0.90, 0.95, 0.9999]) == (pytest.approx(0.998), False)
    # half the photos have a nearest other photo at or above 0.998: the model does not separate them
    assert choose_threshold([0.999, 0.9995], [0.90, 0.9985, 0.9999]) == (1.0, True)
    assert choose_threshold([0.2], []) == (pytest.approx(-0.6), False)  # no other photo to compare with
    assert choose_threshold([-0.5], [0.1]) == (1.0, True)  # never below -1; overlap raises it


def test_a_short_sample_is_measured_again_once_the_index_has_doubled(library, tiny_checkpoint, capsys):
    folder, index_path = library
    assert run(capsys, 'duplicates', '--index', index_path, '--json')[0] == 0  # 5 of 6 photos sampled
    for seed in range(20, 25):
        photo_like(200, 150, seed=seed).save(folder / f'new{seed}.jpg')
    assert run(capsys, 'index', folder, '--index', index_path, *MODEL)[0] == 0  # 11 photos: not yet twice 6
    assert json.loads(run(capsys, 'duplicates', '--index', index_path, '--json')[1])['threshold']['source'] == 'stored'
    photo_like(200, 150, seed=30).save(folder / 'new30.jpg')
    assert run(capsys, 'index', folder, '--index', index_path, *MODEL)[0] == 0  # 12 photos
    result = json.loads(run(capsys, 'duplicates', '--index', index_path, '--json')[1])
    assert result['threshold']['source'] == 'measured' and result['threshold']['measured']['sample'] == 11
