"""pics/make_pics.py regenerates the README's pictures with the library's plotting code."""
import importlib.util
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip('matplotlib')
SCRIPT = Path(__file__).resolve().parents[1] / 'pics' / 'make_pics.py'


def test_make_pics_draws_the_three_pictures_with_the_given_checkpoint(tmp_path, tiny_checkpoint):
    spec = importlib.util.spec_from_file_location('make_pics', SCRIPT)
    make_pics = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_pics)
    written = make_pics.main(['--model', str(tiny_checkpoint), '--out', str(tmp_path)])
    assert [path.name for path in written] == ['cosine_heatmap.png', 'probability_bars.png', 'label_grid.png']
    for path in written:
        with Image.open(path) as image:
            assert image.format == 'PNG' and image.width > 400 and image.height > 300
    for name in ('cosine_heatmap.png', 'probability_bars.png', 'label_grid.png'):
        assert (SCRIPT.parent / name).is_file(), f'pics/{name} is missing: run python pics/make_pics.py'
