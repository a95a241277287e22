"""docs/export.md's examples run against a tiny checkpoint served by a local Hub stand-in."""
import shlex

import pytest

from helpers.doc_blocks import DOCS, code_blocks, command_lines
from helpers.images import rgb_image
from ruclip.cli import build_parser

PAGE = DOCS / 'export.md'


def readme_bash_commands():
    return [shlex.split(line, comments=True) for line in command_lines(PAGE)]


def test_docs_commands_parse():
    commands = readme_bash_commands()
    assert [c[:2] for c in commands] == [['ruclip', 'export-onnx'], ['ruclip', 'export-hf']]
    for command in commands:
        args = build_parser().parse_args(command[1:])
        assert args.model == 'ruclip-vit-base-patch32-384'


@pytest.fixture
def cat_picture(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rgb_image(200, 150, seed=1).save('cat.jpg')


@pytest.mark.slow
@pytest.mark.usefixtures('hub_with_all_models')
def test_docs_onnx_example_runs(cat_picture):
    pytest.importorskip('onnxruntime')
    pytest.importorskip('onnxscript')
    (onnx_block,) = code_blocks(PAGE, 'ONNX')
    namespace = {}
    exec(onnx_block, namespace)
    assert namespace['image_latents'].shape == (1, 24) and namespace['text_latents'].shape == (2, 24)


@pytest.mark.usefixtures('hub_with_all_models')
def test_docs_transformers_example_runs(cat_picture):
    pytest.importorskip('transformers')
    (hf_block,) = code_blocks(PAGE, 'Hugging Face transformers')
    namespace = {}
    exec(hf_block, namespace)
    assert namespace['probs'].shape == (1, 2)
    assert sorted(r['label'] for r in namespace['result']) == ['кошка', 'собака']
