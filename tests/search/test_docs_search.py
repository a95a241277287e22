"""docs/search.md's commands and Python, run as written against the Hub stand-in's tiny checkpoint."""
import json
import shlex

import numpy as np
import pytest

from helpers.doc_blocks import DOCS, code_blocks
from helpers.images import rgb_image
from helpers.library import write_library
from ruclip.cli import main

PAGE = DOCS / 'search.md'


@pytest.fixture
def home(tmp_path, monkeypatch, hub_with_all_models):
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    monkeypatch.delenv('RUCLIP_INDEX', raising=False)
    monkeypatch.delenv('XDG_DATA_HOME', raising=False)
    write_library(tmp_path / 'home' / 'photos', 12)
    write_library(tmp_path / 'home' / 'photos' / '2024', 3, start_seed=40)
    monkeypatch.chdir(tmp_path)
    rgb_image(60, 40, seed=99).save(tmp_path / 'диван.jpg')
    return tmp_path / 'home'


def test_docs_commands_run(home, capsys):
    (block,) = [b for b in code_blocks(PAGE, language='bash') if 'ruclip index' in b]
    ran = 0
    for line in block.splitlines():
        command = line.split('  #')[0].strip()
        if not command.startswith('ruclip ') or '|' in command or command.startswith('ruclip serve'):
            continue  # a pipe into an image viewer; the server runs until stopped (tests/serve/test_page.py)
        arguments = [str(home) + arg[1:] if arg.startswith('~/') else arg for arg in shlex.split(command)[1:]]
        assert main(arguments) == 0, command
        ran += 1
    assert ran == 4
    output = capsys.readouterr().out
    assert '15 embedded' in output and '"path"' in output


def test_docs_python_example_runs(home, tmp_path):
    (block,) = code_blocks(PAGE)
    import ruclip
    clip, processor = ruclip.load('ruclip-vit-base-patch32-384')
    predictor = ruclip.Predictor(clip, processor, 'cpu', quiet=True)
    files = ruclip.find_images(home / 'photos')
    latents = predictor.get_image_latents(files).numpy()
    identity = json.dumps(predictor.identity.to_dict())  # as `ruclip embed` records it
    np.savez(tmp_path / 'latents.npz', latents=latents, files=np.array(files), model_identity=np.array(identity))
    (tmp_path / 'embeddings' / 'img_emb').mkdir(parents=True)
    (tmp_path / 'embeddings' / 'metadata').mkdir()
    (tmp_path / 'embeddings' / '_manifest.json').write_text(f'{{"model_identity": {identity}}}')
    np.save(tmp_path / 'embeddings' / 'img_emb' / 'img_emb_0.npy', latents.astype(np.float16))
    pyarrow = pytest.importorskip('pyarrow')
    import pyarrow.parquet
    pyarrow.parquet.write_table(pyarrow.table({'image_path': files}),
                                tmp_path / 'embeddings' / 'metadata' / 'metadata_0.parquet')
    pytest.importorskip('faiss')
    namespace = {}
    exec(block, namespace)
    index = namespace['index']
    assert namespace['report'].embedded == 15 and len(index) == 15
    assert namespace['hit'].rank == 5
