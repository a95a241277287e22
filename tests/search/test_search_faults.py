"""Bad input and faults: empty and unreadable queries, bad --top-k, foreign and newer files, another
model, read-only index, concurrent updates, a full disk, unreadable files, SIGKILL mid-run."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

import ruclip
from helpers.library import index_state, predictor_for, write_library
from ruclip.cli import main
from ruclip.search import database


@pytest.fixture(scope='module')
def predictor(tiny_checkpoint):
    return predictor_for(tiny_checkpoint)


@pytest.fixture
def built(tmp_path, predictor, tiny_checkpoint):
    write_library(tmp_path / 'lib', 8)
    index = ruclip.ImageIndex(tmp_path / 'lib.index', predictor, model_name=str(tiny_checkpoint))
    index.update([tmp_path / 'lib'])
    return index


def search(index, *arguments):
    return main(['search', '--index', index.path, '-q', *arguments])


@pytest.mark.parametrize('query', ['', '   ', '2:', '-  '])
def test_empty_query_is_refused(built, capsys, query):
    assert search(built, '--', query) == 2
    assert 'empty' in capsys.readouterr().err
    if not query.strip():  # ImageIndex.search takes a str as the text itself, weights are the CLI's syntax
        with pytest.raises(ValueError, match='empty or blank'):
            built.search(query)


def test_unreadable_or_missing_image_query(built, tmp_path, capsys):
    (tmp_path / 'broken.jpg').write_bytes(b'not a jpeg')
    assert search(built, str(tmp_path / 'broken.jpg')) == 2
    assert 'cannot read image' in capsys.readouterr().err and 'broken.jpg' in capsys.readouterr().err + 'broken.jpg'
    assert search(built, './нет-такого.jpg') == 2
    assert 'no such image file' in capsys.readouterr().err
    with pytest.raises(ValueError, match='cannot read image'):
        built.search(b'garbage bytes')


def test_top_k_zero_and_larger_than_the_index(built, capsys):
    with pytest.raises(SystemExit) as exit:
        search(built, 'кошка', '--top-k', '0')
    assert exit.value.code == 2 and 'positive integer' in capsys.readouterr().err
    with pytest.raises(ValueError, match='positive integer'):
        built.search('кошка', k=0)
    assert search(built, '--top-k', '100', '--json', 'кошка') == 0
    out = capsys.readouterr()
    assert len(json.loads(out.out)) == 8 and 'holds only 8 images' in out.err


def test_foreign_newer_and_non_sqlite_files_are_refused(tmp_path, predictor):
    other = tmp_path / 'other.db'
    sqlite3.connect(other).executescript('CREATE TABLE meta (key TEXT, value TEXT); CREATE TABLE x (y);')
    text = tmp_path / 'notes.index'
    text.write_text('hello')
    for path, message in [(other, 'not a ruclip image index'), (text, 'not a ruclip image index')]:
        with pytest.raises(ValueError, match=message):
            ruclip.ImageIndex(path, predictor)
        assert main(['search', 'кошка', '--index', str(path)]) == 2
    write_library(tmp_path / 'lib', 2)
    index = ruclip.ImageIndex(tmp_path / 'new.index', predictor)
    index.update([tmp_path / 'lib'])
    with sqlite3.connect(index.path) as connection:
        connection.execute("UPDATE meta SET value = '99' WHERE key = 'version'")
    with pytest.raises(ValueError, match='format version 99, newer than this ruclip reads'):
        ruclip.ImageIndex(index.path, predictor)


def test_another_model_is_refused_naming_both(built, checkpoint_factory, tmp_path):
    other = checkpoint_factory(seed=1)
    index = ruclip.ImageIndex(built.path, predictor_for(other), model_name='other-model')
    with pytest.raises(ValueError, match=r"holds latents of the model '.*' .* not of 'other-model'"):
        index.search('кошка')
    with pytest.raises(ValueError, match='not of'):
        album = tmp_path / 'lib' / 'album0'
        (album / 'x.png').write_bytes((album / 'photo0000.jpg').read_bytes())  # a move: no embedding needed
        os.remove(album / 'photo0000.jpg')
        index.update([tmp_path / 'lib'])
    assert main(['search', 'кошка', '--index', built.path, '--model', str(other)]) == 2


def test_read_only_index_searches_but_refuses_updates(built, predictor, tmp_path):
    index = ruclip.ImageIndex(built.path, predictor, readonly=True)
    assert len(index.search('кошка', k=3)) == 3
    with pytest.raises(PermissionError, match='read-only'):
        index.update([tmp_path / 'lib'])
    if os.geteuid() == 0:
        return  # root writes read-only files anyway: the permission case needs an ordinary user
    os.chmod(built.path, 0o444)
    try:
        index = ruclip.ImageIndex(built.path, predictor)
        assert len(index.search('кошка', k=3)) == 3
        with pytest.raises(PermissionError, match='is read-only'):
            index.update([tmp_path / 'lib'])
    finally:
        os.chmod(built.path, 0o644)


def test_a_second_update_waits_then_refuses(built, predictor, tmp_path, capsys, tiny_checkpoint):
    with database.writing(built.path, wait=0):  # as another `ruclip index` holds it
        started = time.monotonic()
        with pytest.raises(database.IndexBusy, match='being updated by another process'):
            ruclip.ImageIndex(built.path, predictor, wait=0.3).update([tmp_path / 'lib'])
        assert time.monotonic() - started >= 0.3
        assert main(['index', str(tmp_path / 'lib'), '--index', built.path, '--wait', '0', '-q']) == 3
        assert 'being updated by another process' in capsys.readouterr().err
    assert ruclip.ImageIndex(built.path, predictor).update([tmp_path / 'lib']).unchanged == 8


def test_disk_full_mid_run_keeps_a_consistent_index(tmp_path, predictor, monkeypatch):
    write_library(tmp_path / 'lib', 40)
    connect = database.connect

    def small_disk(path, readonly):
        connection = connect(path, readonly)
        if not readonly:  # SQLite's own SQLITE_FULL once the file reaches this many pages
            pages = connection.execute('PRAGMA page_count').fetchone()[0]
            connection.execute(f'PRAGMA max_page_count = {pages + 1}')
        return connection

    monkeypatch.setattr(database, 'connect', small_disk)
    index = ruclip.ImageIndex(tmp_path / 'x.index', predictor)
    with pytest.raises(OSError, match='the disk is full: index .* keeps the [1-9][0-9]* images committed') as error:
        index.update([tmp_path / 'lib'], commit_every=4)
    assert error.value.errno == 28
    monkeypatch.setattr(database, 'connect', connect)
    reopened = ruclip.ImageIndex(tmp_path / 'x.index', predictor)
    kept = len(reopened)
    assert 0 < kept < 40
    assert reopened._connection.execute('PRAGMA integrity_check').fetchone()[0] == 'ok'
    assert len(reopened.search('кошка', k=50)) == kept
    assert reopened.update([tmp_path / 'lib']).embedded == 40 - kept
    assert len(reopened) == 40


def test_unreadable_files_are_skipped_then_retried(tmp_path, predictor, tiny_checkpoint, capsys):
    files = write_library(tmp_path / 'lib', 6)
    broken = tmp_path / 'lib' / 'album0' / 'broken.png'
    broken.write_bytes(b'not a png')
    arguments = ['index', str(tmp_path / 'lib'), '--index', str(tmp_path / 'x.index'), '--model', str(tiny_checkpoint),
                 '-q']
    assert main(arguments) == 1
    assert 'broken.png' in capsys.readouterr().err
    assert main(arguments) == 1  # retried, still unreadable
    broken.write_bytes(open(files[0], 'rb').read())
    assert main(arguments) == 0
    assert '1 reused' in capsys.readouterr().out
    assert len(ruclip.ImageIndex(tmp_path / 'x.index')) == 7


TORCH_FP32 = ['--backend', 'torch', '--dtype', 'fp32']  # the predictor the test compares with


def test_sigkill_mid_index_loses_nothing_after_a_rerun(tmp_path, predictor, tiny_checkpoint):
    files = write_library(tmp_path / 'lib', 160, size=(24, 18))
    path = str(tmp_path / 'x.index')
    command = [sys.executable, '-m', 'ruclip', 'index', str(tmp_path / 'lib'), '--index', path, '--model',
               str(tiny_checkpoint), '--commit-every', '8', '--batch-size', '8', '-q', '--exact-decode', *TORCH_FP32]
    environment = dict(os.environ, PYTHONPATH=os.getcwd())
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    committed = 0
    deadline = time.monotonic() + 60
    while committed == 0 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
        if os.path.isfile(path):
            try:
                with sqlite3.connect(f'file:{path}?mode=ro', uri=True) as connection:
                    committed = connection.execute('SELECT COUNT(*) FROM images').fetchone()[0]
            except sqlite3.Error:
                pass
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, 'the run ended before it could be killed'
    index = ruclip.ImageIndex(path, predictor)
    after_kill = len(index)
    assert 0 < after_kill < 160
    assert index._connection.execute('PRAGMA integrity_check').fetchone()[0] == 'ok'
    assert len(index.search('кошка', k=160)) == after_kill
    rerun = index.update([tmp_path / 'lib'])  # as a second `ruclip index` would
    assert (rerun.unchanged, rerun.embedded, rerun.skipped) == (after_kill, 160 - after_kill, [])
    state = index_state(index)
    assert sorted(state) == files  # none missing, none twice (paths are unique in the table)
    fresh = ruclip.ImageIndex(tmp_path / 'fresh.index', predictor)
    fresh.update([tmp_path / 'lib'])
    for name, row in index_state(fresh).items():
        np.testing.assert_allclose(np.frombuffer(state[name][3], np.float32), np.frombuffer(row[3], np.float32),
                                   atol=1e-6)
