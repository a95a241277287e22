"""Image batches from worker threads: shared lazy images, errors that stop the run early, skipping,
and embed_images decoding its files there."""
import threading

import pytest
import torch
from PIL import Image

import ruclip
from helpers.images import rgb_image
from ruclip.image import ImageTransform
from ruclip._batches import image_batches


@pytest.fixture(scope='module')
def predictor(tiny_checkpoint):
    clip, processor = ruclip.load(str(tiny_checkpoint))
    return ruclip.Predictor(clip, processor, 'cpu', quiet=True, num_workers=4)


@pytest.fixture
def jpeg(tmp_path):
    path = tmp_path / 'photo.jpg'
    rgb_image(900, 700, seed=3).save(path, quality=90)
    return path


def test_one_lazy_image_listed_many_times_is_read_once_at_a_time(predictor, jpeg):
    expected = predictor.get_image_latents([Image.open(jpeg).convert('RGB')])
    for _ in range(6):
        lazy = Image.open(jpeg)  # not decoded yet: the workers share its file pointer
        latents = predictor.get_image_latents([lazy, lazy, lazy, lazy])
        torch.testing.assert_close(latents, expected.expand(4, -1), atol=1e-6, rtol=0)


def test_any_error_from_a_pil_image_names_its_position(predictor, jpeg):
    broken = Image.open(jpeg)

    def fail():
        raise AssertionError('decoder state')
    broken.load = fail
    with pytest.raises(ValueError, match=r'image #1 \(PIL image RGB 900x700\): decoder state'):
        predictor.get_image_latents([rgb_image(30, 30), broken])


def test_an_error_that_is_a_bug_is_not_taken_for_an_unreadable_file(predictor, jpeg, monkeypatch):
    def broken_open_image(source, draft_size=None):
        raise RuntimeError('a bug')
    monkeypatch.setattr(ruclip._batches, 'open_image', broken_open_image)
    for on_error in (None, lambda *args: pytest.fail('a bug was skipped as an unreadable file')):
        with pytest.raises(RuntimeError, match='^a bug$'):
            predictor.get_image_latents([jpeg], on_error=on_error)


class CountingTransform(ImageTransform):
    def __init__(self, gate: threading.Event = None):
        super().__init__(8, [0.5] * 3, [0.5] * 3)
        self.calls, self.gate = 0, gate

    def __call__(self, image, out=None):
        if self.gate is not None and not self.gate.wait(timeout=5):
            self.gate.set()  # never opened: let the rest through
        self.calls += 1
        return super().__call__(image, out=out)


@pytest.mark.parametrize('num_workers', [0, 1])
def test_an_error_stops_the_batch_without_loading_the_rest(tmp_path, num_workers, monkeypatch):
    cancelled = threading.Event()  # the worker holds each image until the failing batch is cancelled
    cancel = ruclip._batches._cancel

    def cancel_and_release(futures):
        cancel(futures)
        cancelled.set()
    monkeypatch.setattr(ruclip._batches, '_cancel', cancel_and_release)
    transform = CountingTransform(gate=cancelled)
    images = [str(tmp_path / 'missing.jpg')] + [rgb_image(40, 40)] * 200
    with pytest.raises(FileNotFoundError, match='image #0: image file not found'):
        list(image_batches(images, transform, batch_size=201, num_workers=num_workers))
    assert transform.calls < 5


def test_on_error_leaves_unreadable_images_out_in_order(tmp_path):
    transform = CountingTransform()
    good = [rgb_image(40 + i, 40, seed=i) for i in range(5)]
    images = [good[0], str(tmp_path / 'missing.jpg'), good[1], b'junk', good[2], good[3], good[4]]
    errors = []
    batches = list(image_batches(images, transform, batch_size=3, num_workers=2,
                                 on_error=lambda index, image, error: errors.append((index, type(error)))))
    assert [len(batch) for batch in batches] == [2, 2, 1]
    assert torch.equal(torch.cat(batches), torch.stack([transform(image) for image in good]))
    assert errors == [(1, FileNotFoundError), (3, ValueError)]


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


def test_decode_threads_follow_the_cores_this_process_gets(monkeypatch, tmp_path):
    from ruclip import _batches

    monkeypatch.setattr(_batches.os, 'sched_getaffinity', lambda pid: {0, 1, 2, 3, 4, 5}, raising=False)
    quota = tmp_path / 'cpu.max'
    monkeypatch.setattr(_batches, 'CGROUP_CPU_MAX', str(quota))
    assert _batches.usable_cores() == 6  # no cgroup file: the affinity
    for text, cores in (('max 100000\n', 6), ('150000 100000\n', 2), ('50000 100000\n', 1), ('900000 100000', 6)):
        quota.write_text(text)
        assert _batches.usable_cores() == cores, text
    monkeypatch.setattr(_batches.os, 'sched_getaffinity', lambda pid: set(range(32)), raising=False)
    quota.write_text('max 100000')
    assert _batches.default_num_workers() == _batches.MAX_DEFAULT_WORKERS
