"""The examples of the core's docs pages (getting started, zero-shot, loading, CPU, command line) run as
written, on a local Hub stand-in serving tiny checkpoints; each capability's pages run beside its tests."""
import shlex

import pytest
import torch

from helpers.doc_blocks import DOCS, code_blocks, command_lines
from helpers.images import rgb_image

pytest.importorskip('matplotlib')


@pytest.fixture
def photos(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'photos' / 'more').mkdir(parents=True)
    for i, name in enumerate(['a.jpg', 'b.png', 'more/c.jpg', 'd.webp', 'e.png']):
        rgb_image(120 + 20 * i, 100, seed=i).save(tmp_path / 'photos' / name)
    rgb_image(90, 90, seed=9).save(tmp_path / 'cat.jpg')
    rgb_image(150, 200, seed=2).save(tmp_path / 'dog.jpg')
    (tmp_path / 'captions.txt').write_text('кошка спит на диване\nсобака бежит по полю\n', encoding='utf-8')
    return tmp_path


def run_commands(lines, capsys):
    from ruclip.cli import main

    for line in lines:
        argv = shlex.split(line, comments=True)
        argv = argv[:argv.index('>')] if '>' in argv else argv
        assert argv[0] == 'ruclip'
        assert main(argv[1:]) == 0, (line, capsys.readouterr().err)


@pytest.mark.usefixtures('hub_with_all_models')
def test_getting_started_example_runs(photos, capsys):
    (block,) = code_blocks(DOCS / 'getting-started.md', 'A first example')
    namespace = {}
    exec(block, namespace)
    assert [len(names) for names in namespace['top'].labels] == [2, 2]
    run_commands(command_lines(DOCS / 'getting-started.md', 'A first example'), capsys)
    assert 'кошка' in capsys.readouterr().out


@pytest.mark.usefixtures('hub_with_all_models')
def test_zero_shot_examples_run(photos):
    blocks = code_blocks(DOCS / 'zero-shot.md', 'Zero-shot classification')
    assert len(blocks) == 2
    namespace = {}
    exec(blocks[0], namespace)
    assert len(namespace['pred_labels']) == 2
    exec(blocks[1], namespace)
    assert namespace['logits_per_image'].shape == (2, 2)
    assert namespace['image_latents'].shape == namespace['text_latents'].shape == (2, 24)


@pytest.mark.usefixtures('hub_with_all_models')
def test_probabilities_and_pictures_examples_run(photos):
    import matplotlib
    matplotlib.use('Agg')
    page = DOCS / 'zero-shot.md'
    blocks = code_blocks(page, 'Probabilities, top-k and ranking') + code_blocks(page, 'Pictures')
    assert len(blocks) == 3
    namespace = {}
    for block in blocks:
        exec(block, namespace)
    predictor, files, labels, top = (namespace[name] for name in ('predictor', 'files', 'labels', 'top'))
    assert len(files) == 5
    assert top.indices[:, 0].tolist() == predictor.run(files, predictor.get_text_latents(labels))
    torch.testing.assert_close(namespace['probabilities'].sum(1), torch.ones(5))
    assert namespace['similarity'].shape == (5, 3)
    assert all((photos / name).stat().st_size > 0 for name in ('cosine.png', 'probabilities.png', 'labels.png'))


def test_loading_examples_run(hub_with_all_models, tmp_path, checkpoint_factory):
    (block,) = code_blocks(DOCS / 'loading.md')
    folder = str(checkpoint_factory('ruclip-vit-base-patch16-224'))
    code = block.replace("'/path/to/folder'", repr(folder)).replace("'/data/hf'", repr(str(tmp_path / 'data')))
    import ruclip
    namespace = {'torch': torch, 'ruclip': ruclip}
    exec(code, namespace)
    assert namespace['clip'].dtype == torch.bfloat16  # the block's last line


def test_speed_example_runs(hub_with_all_models, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for i, name in enumerate(['a.jpg', 'b.jpg', 'c.png']):
        rgb_image(200 + 30 * i, 150, seed=i).save(name)
    (block,) = code_blocks(DOCS / 'cpu.md', 'Speed')
    namespace = {}
    exec(block, namespace)
    from ruclip._device import auto_dtype
    assert namespace['clip'].dtype == auto_dtype(torch.device('cpu'))  # dtype='auto'
    assert len(namespace['labels']) == 3 and set(namespace['labels']) <= {0, 1}


@pytest.mark.usefixtures('hub_with_all_models')
def test_command_line_examples_run(photos, capsys):
    lines = command_lines(DOCS / 'cli.md', 'Examples')
    assert len(lines) == 6
    run_commands(lines, capsys)
    assert all((photos / name).is_file() for name in ('latents.npz', 'latents.files.txt', 'latents.model.json'))
