"""The image policy (ruclip/image.py's docstring): files are turned upright by their EXIF orientation
and refused over the pixel limit before decoding; PIL images are taken as given (the original's
pixels); 16-bit and float modes are scaled to 8 bits, not clipped to white; one Predictor serves
several threads at once; a PIL image whose file was closed gets a full message."""
import threading

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

import ruclip
from helpers.images import rgb_array, rgb_image
from ruclip.image import open_image


@pytest.fixture(scope='module')
def loaded(tiny_checkpoint):
    return ruclip.load(str(tiny_checkpoint))


@pytest.fixture(scope='module')
def predictor(loaded):
    return ruclip.Predictor(*loaded, 'cpu', quiet=True, num_workers=2)


@pytest.fixture
def sideways(tmp_path):
    """A phone photo stored 60 wide x 40 high with EXIF Orientation 6: it is shown 40 wide x 60 high."""
    path = tmp_path / 'phone.jpg'
    exif = Image.Exif()
    exif[0x0112] = 6
    rgb_image(60, 40, seed=5).save(path, exif=exif.tobytes(), quality=95)
    return path


def test_files_and_bytes_are_turned_by_their_exif_orientation(sideways):
    upright = ImageOps.exif_transpose(Image.open(sideways))
    for source in (sideways, str(sideways), sideways.read_bytes()):
        image = open_image(source)
        assert image.size == (40, 60) and np.array_equal(np.asarray(image), np.asarray(upright))
    assert open_image(sideways, exif_transpose=False).size == (60, 40)


def test_every_path_that_reads_files_embeds_the_upright_photo(predictor, loaded, sideways, tmp_path):
    upright = ImageOps.exif_transpose(Image.open(sideways))
    expected = predictor.get_image_latents([upright])
    assert not torch.allclose(expected, predictor.get_image_latents([Image.open(sideways)]), atol=1e-3)
    torch.testing.assert_close(predictor.get_image_latents([str(sideways)]), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(ruclip.embed_images(predictor, [sideways]).latents, expected, atol=1e-6, rtol=0)
    processor = loaded[1]
    assert torch.equal(processor(images=[str(sideways)])['pixel_values'], processor(images=[upright])['pixel_values'])
    labels = ['кошка', 'собака']
    top = ruclip.classify(predictor, [str(sideways)], labels, k=2)
    assert top.scores.tolist() == ruclip.classify(predictor, expected, labels, k=2).scores.tolist()


def test_a_pil_image_is_taken_as_given_as_the_original_takes_it(loaded, sideways):
    """Parity with the original: its processor never read EXIF, and ours does not for PIL images."""
    processor = loaded[1]
    stored = Image.open(sideways)
    assert torch.equal(processor(images=[stored])['pixel_values'],
                       processor(images=[Image.open(sideways).convert('RGB')])['pixel_values'])


@pytest.mark.parametrize('kind', ['I;16', 'I', 'F-fraction', 'F-levels', 'F-16bit'])
def test_wide_modes_are_scaled_to_8_bits_not_clipped_to_white(loaded, tmp_path, kind):
    levels = rgb_array(90, 70, seed=2)[..., 0]  # uint8, 0..255
    stored = {
        'I;16': lambda: Image.fromarray(levels.astype(np.uint16) * 257),
        'I': lambda: Image.fromarray(levels.astype(np.int32) * 257),
        'F-fraction': lambda: Image.fromarray(levels.astype(np.float32) / 255),
        'F-levels': lambda: Image.fromarray(levels.astype(np.float32)),
        'F-16bit': lambda: Image.fromarray(levels.astype(np.float32) * 257),
    }[kind]()
    processor = loaded[1]
    expected = processor(images=[Image.fromarray(levels)])['pixel_values']
    assert torch.equal(processor(images=[stored])['pixel_values'], expected), kind
    if kind == 'I;16':  # also read from a 16-bit PNG file
        stored.save(tmp_path / 'deep.png')
        assert Image.open(tmp_path / 'deep.png').mode == 'I;16'
        assert torch.equal(processor(images=[str(tmp_path / 'deep.png')])['pixel_values'], expected)


def test_values_outside_every_range_are_clipped_as_the_original_clips_them(loaded):
    processor = loaded[1]
    values = rgb_array(30, 30, seed=4)[..., 0].astype(np.int32) * 3 - 100  # -100..665
    clipped = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8))
    assert torch.equal(processor(images=[Image.fromarray(values)])['pixel_values'],
                       processor(images=[clipped])['pixel_values'])


def test_an_image_between_one_and_two_times_the_pixel_limit_is_skipped_before_decoding(tmp_path, predictor,
                                                                                        monkeypatch):
    small, large = tmp_path / 'small.png', tmp_path / 'large.png'
    rgb_image(20, 20).save(small)
    rgb_image(40, 40).save(large)  # 1600 pixels: 1.6 times the limit, where PIL only warns
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 1000)
    decoded = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, 'load', lambda self: decoded.append(self.size) or real_load(self))
    with pytest.warns(Image.DecompressionBombWarning), \
            pytest.raises(ValueError, match=r'cannot read image .*large\.png: .*exceeds limit of 1000 pixels.*'
                                            r'MAX_IMAGE_PIXELS'):
        open_image(large)
    assert (40, 40) not in decoded
    with pytest.warns(Image.DecompressionBombWarning):
        embeddings = ruclip.embed_images(predictor, [small, large])
    assert embeddings.files == [str(small)] and [path for path, _ in embeddings.skipped] == [str(large)]
    with pytest.warns(Image.DecompressionBombWarning), pytest.raises(ValueError, match='exceeds limit'):
        loaded_processor = predictor.clip_processor
        loaded_processor(images=[large.read_bytes()])


def test_a_pil_image_whose_file_was_closed_says_what_happened(predictor, tmp_path):
    path = tmp_path / 'photo.png'
    rgb_image(30, 30).save(path)
    lazy = Image.open(path)
    lazy.close()
    with pytest.raises(ValueError, match=r'image #0 \(PIL image RGB 30x30\): Operation on closed image \(the PIL '
                                         r'image was opened lazily and its file closed before it was decoded: '
                                         r'call image.load\(\) before closing the file, or give the file path'):
        predictor.get_image_latents([lazy])


def test_an_error_without_a_message_is_named_by_its_type(predictor, tmp_path):
    path = tmp_path / 'photo.png'
    rgb_image(30, 30).save(path)
    broken = Image.open(path)

    def fail():
        raise OSError()
    broken.load = fail
    with pytest.raises(ValueError, match=r'^image #0 \(PIL image RGB 30x30\): OSError$'):
        predictor.get_image_latents([broken])


def test_one_predictor_in_several_threads_gives_the_serial_results(predictor, tmp_path):
    paths = []
    for i in range(4):
        paths.append(tmp_path / f'{i}.jpg')
        rgb_image(400, 300, seed=i).save(paths[-1], quality=90)
    expected = predictor.get_image_latents([Image.open(path).convert('RGB') for path in paths])
    for attempt in range(4):
        lazy = [Image.open(path) for path in paths]  # not decoded: the two calls share their file pointers
        results, errors = [None, None], []
        start = threading.Barrier(2)

        def embed(slot):
            try:
                start.wait()
                results[slot] = predictor.get_image_latents(lazy + lazy[::-1])
            except Exception as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=embed, args=(slot,)) for slot in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [], f'attempt {attempt}: {errors}'
        for result in results:
            torch.testing.assert_close(result, torch.cat([expected, expected.flip(0)]), atol=1e-6, rtol=0)


def test_an_empty_batch_is_no_error_as_in_the_original(predictor):
    latents = predictor.get_text_latents(['кошка', 'собака'])
    assert predictor.run([], latents) == []
    assert predictor.get_image_latents([]).shape == (0, predictor.clip_model.config.embed_dim)
