"""README's 'Deploying elsewhere' examples run against a tiny checkpoint served by a local Hub stand-in."""
import re
import shlex

import pytest

from helpers.images import rgb_image
from ruclip.cli import build_parser
from test_readme import README, readme_python_blocks

HEADING = 'Deploying elsewhere: ONNX and Hugging Face transformers'


def readme_bash_commands():
    section = README.read_text(encoding='utf-8').split(f'\n## {HEADING}\n', 1)[1].split('\n## ', 1)[0]
    blocks = re.findall(r'```bash\n(.*?)```', section, flags=re.S)
    return [shlex.split(line, comments=True) for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_commands_parse():
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
def test_readme_onnx_example_runs(cat_picture):
    pytest.importorskip('onnxruntime')
    pytest.importorskip('onnxscript')
    onnx_block, _ = readme_python_blocks(HEADING)
    namespace = {}
    exec(onnx_block, namespace)
    assert namespace['image_latents'].shape == (1, 24) and namespace['text_latents'].shape == (2, 24)


@pytest.mark.usefixtures('hub_with_all_models')
def test_readme_transformers_example_runs(cat_picture):
    pytest.importorskip('transformers')
    _, hf_block = readme_python_blocks(HEADING)
    namespace = {}
    exec(hf_block, namespace)
    assert namespace['probs'].shape == (1, 2)
    assert sorted(r['label'] for r in namespace['result']) == ['кошка', 'собака']
