"""embed_images: files decoded in the Predictor's worker threads, unreadable ones skipped."""
import threading

import pytest
from PIL import Image

import ruclip
from images import rgb_image


@pytest.fixture(scope='module')
def predictor(tiny_checkpoint):
    clip, processor = ruclip.load(str(tiny_checkpoint))
    return ruclip.Predictor(clip, processor, 'cpu', quiet=True, num_workers=2)


@pytest.fixture
def files(tmp_path):
    paths = []
    for i in range(4):
        paths.append(str(tmp_path / f'{i}.jpg'))
        rgb_image(80 + i, 60, seed=i).save(paths[-1])
    return paths


def test_files_are_decoded_in_worker_threads(predictor, files, monkeypatch):
    threads = []
    real_open = Image.open

    def spy(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real_open(*args, **kwargs)
    monkeypatch.setattr(Image, 'open', spy)
    assert len(ruclip.embed_images(predictor, files).files) == 4
    assert len(threads) == 4 and all(name.startswith('ruclip-images') for name in threads)


def test_a_lone_path_is_refused(predictor, files):
    with pytest.raises(TypeError, match='files must be a list of image file paths, got one str.*find_images'):
        ruclip.embed_images(predictor, files[0])
