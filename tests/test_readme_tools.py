"""README's probabilities, pictures and command-line sections run as written, on a local Hub stand-in."""
import re
import shlex

import pytest
import torch

from helpers.images import rgb_image
from test_readme import README, readme_python_blocks

pytest.importorskip('matplotlib')


@pytest.fixture
def photos(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'photos' / 'more').mkdir(parents=True)
    for i, name in enumerate(['a.jpg', 'b.png', 'more/c.jpg', 'd.webp', 'e.png']):
        rgb_image(120 + 20 * i, 100, seed=i).save(tmp_path / 'photos' / name)
    rgb_image(90, 90, seed=9).save(tmp_path / 'cat.jpg')
    (tmp_path / 'captions.txt').write_text('кошка спит на диване\nсобака бежит по полю\n', encoding='utf-8')
    return tmp_path


@pytest.mark.usefixtures('hub_with_all_models')
def test_probabilities_and_pictures_examples_run(photos):
    import matplotlib
    matplotlib.use('Agg')
    blocks = readme_python_blocks('Probabilities, top-k and ranking') + readme_python_blocks('Pictures')
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


@pytest.mark.usefixtures('hub_with_all_models')
def test_command_line_examples_run(photos, capsys):
    from ruclip.cli import main

    section = README.read_text(encoding='utf-8').split('\n## Command line\n', 1)[1].split('\n## ', 1)[0]
    (block,) = re.findall(r'```bash\n(.*?)```', section, flags=re.DOTALL)
    for line in block.splitlines():
        argv = shlex.split(line, comments=True)
        argv = argv[:argv.index('>')] if '>' in argv else argv
        assert argv[0] == 'ruclip'
        assert main(argv[1:]) == 0, (line, capsys.readouterr().err)
    assert all((photos / name).is_file() for name in ('latents.npz', 'latents.files.txt', 'latents.model.json'))
