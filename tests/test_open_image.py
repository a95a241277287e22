"""open_image: every unreadable file gives a ValueError naming it, and no file is left open."""
import gc
import warnings

import pytest
from PIL import Image

import ruclip
from helpers.images import rgb_image
from ruclip.image import open_image


def test_an_image_over_pils_pixel_limit_is_named_and_skipped(tmp_path, tiny_checkpoint, monkeypatch):
    files = [str(tmp_path / 'small.png'), str(tmp_path / 'huge.png')]
    rgb_image(10, 10).save(files[0])
    rgb_image(40, 40).save(files[1])
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 300)  # 1600 pixels is over twice the limit: an error
    with pytest.raises(ValueError, match=r'cannot read image .*huge\.png: .*PIL\.Image\.MAX_IMAGE_PIXELS'):
        open_image(files[1])
    predictor = ruclip.Predictor(*ruclip.load(str(tiny_checkpoint)), 'cpu', quiet=True)
    embeddings = ruclip.embed_images(predictor, files)
    assert embeddings.files == files[:1] and [path for path, _ in embeddings.skipped] == files[1:]


def test_files_are_closed_after_decoding_or_failing(tmp_path):
    animated, truncated = tmp_path / 'animated.gif', tmp_path / 'truncated.jpg'
    rgb_image(50, 40).save(animated, save_all=True, append_images=[rgb_image(50, 40, seed=1)])
    rgb_image(300, 200).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:2000])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert open_image(animated).convert('RGB').size == (50, 40)
        with pytest.raises(ValueError, match='truncated'):
            open_image(truncated)
        gc.collect()
    assert [str(warning.message) for warning in caught if warning.category is ResourceWarning] == []


def test_a_file_that_is_no_image_is_named_by_its_path(tmp_path):
    path = tmp_path / 'notes.jpg'
    path.write_text('not an image')
    for source, name in ((str(path), str(path)), (path.read_bytes(), '<12 bytes>')):
        with pytest.raises(ValueError) as error:
            open_image(source)
        assert str(error.value) == f'cannot read image {name}: not an image file Pillow can read'
