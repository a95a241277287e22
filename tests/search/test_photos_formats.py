"""HEIC/HEIF and AVIF photos (issue 22, part 3): indexed and searchable with their plug-ins; without
one, the files are named with the command that installs it, never left out silently."""
import json

import pytest
from PIL import Image

import ruclip
from helpers.photos import photo_like
from ruclip.cli import main

pillow_heif = pytest.importorskip('pillow_heif')  # in the [photos] extra, which [test] includes


def index_command(library, index, checkpoint=None):
    model = ['--model', str(checkpoint)] if checkpoint else []
    return main(['index', str(library), '--index', str(index), '-q', '--backend', 'torch', '--dtype', 'fp32', *model])


@pytest.fixture
def library(tmp_path):
    pillow_heif.register_heif_opener()
    folder = tmp_path / 'lib'
    (folder / 'phone').mkdir(parents=True)
    photo_like(320, 240, seed=1).save(folder / 'phone' / 'IMG_0001.HEIC')
    photo_like(320, 240, seed=2).save(folder / 'phone' / 'IMG_0002.avif')
    for seed in (3, 4):
        photo_like(320, 240, seed=seed).save(folder / f'other{seed}.jpg')
    return folder


def test_a_heic_photo_is_indexed_and_found_by_an_image_query(library, tmp_path, tiny_checkpoint, capsys):
    assert index_command(library, tmp_path / 'x.index', tiny_checkpoint) == 0
    assert '4 embedded' in capsys.readouterr().out
    query = tmp_path / 'query.png'  # the HEIC's own pixels, as another file
    Image.open(library / 'phone' / 'IMG_0001.HEIC').save(query)
    assert ruclip.find_images(library) == sorted(str(path) for path in library.rglob('*.*'))
    for photo, as_query in (('IMG_0001.HEIC', query), ('IMG_0002.avif', library / 'phone' / 'IMG_0002.avif')):
        assert main(['search', str(as_query), '--index', str(tmp_path / 'x.index'), '--json', '-k', '1']) == 0
        assert json.loads(capsys.readouterr().out)[0]['path'] == str(library / 'phone' / photo)


def test_without_the_plugin_the_files_and_the_fix_are_named(library, tmp_path, tiny_checkpoint, capsys,
                                                            monkeypatch):
    monkeypatch.delitem(Image.OPEN, 'HEIF')  # as if pillow-heif were not installed
    monkeypatch.setattr(Image, 'ID', [name for name in Image.ID if name != 'HEIF'])
    heic = str(library / 'phone' / 'IMG_0001.HEIC')
    assert index_command(library, tmp_path / 'x.index', tiny_checkpoint) == 1  # files were skipped
    captured = capsys.readouterr()
    assert '3 embedded' in captured.out
    assert captured.err.count("pip install 'ruclip[photos]' (pillow-heif)") == 1  # said once
    assert f'skipped 1 file that Pillow cannot read without a plug-in ({heic})' in captured.err
    assert heic not in ruclip.ImageIndex(tmp_path / 'x.index').files()

    found = ruclip.find_images(library)  # the library's way: the file is named among the unreadable
    assert heic not in found and [path for path, _ in found.unreadable] == [heic]
    assert main(['embed', str(library), '--out', str(tmp_path / 'x.npz'), '--model', str(tiny_checkpoint),
                 '-q']) == 1
    assert f"({heic}); to read them, HEIC/HEIF: pip install 'ruclip[photos]'" in capsys.readouterr().err
