"""Ours against the original ruclip==0.0.2 (fetched from PyPI), on the same checkpoints and inputs."""
import numpy as np
import pytest
import torch
from PIL import Image

import ruclip
from helpers.images import rgb_image, varied_images
from helpers.original import load_original
from helpers.texts import varied_texts

pytestmark = pytest.mark.slow  # fetches the original ruclip 0.0.2 from PyPI once

PARITY_ARCHITECTURES = ['ruclip-vit-base-patch32-224', 'ruclip-vit-base-patch16-384', 'ruclip-vit-large-patch14-336']
ATOL = 1e-5


@pytest.fixture(scope='module')
def original():
    return load_original()


@pytest.fixture(scope='module', params=PARITY_ARCHITECTURES)
def pair(request, original, checkpoint_factory):
    """(ours, theirs): each a (clip, processor) loaded from the same checkpoint folder."""
    folder = checkpoint_factory(request.param)
    theirs = (original.model.CLIP.from_pretrained(str(folder)).eval(),
              original.processor.RuCLIPProcessor.from_pretrained(str(folder)))
    return ruclip.load(str(folder)), theirs


def test_input_ids_identical_on_varied_texts(original, tiny_checkpoint):
    ours = ruclip.RuCLIPProcessor.from_pretrained(tiny_checkpoint)
    theirs = original.processor.RuCLIPProcessor.from_pretrained(str(tiny_checkpoint))
    texts = varied_texts(3000, seed=5) + ['', ' ', 'Кошка', 'ЁЛКА ёлка', 'слово ' * 200]
    for start in range(0, len(texts), 500):
        chunk = texts[start:start + 500]
        expected = theirs(text=chunk)['input_ids']
        got = ours(text=chunk)['input_ids']
        assert got.dtype == expected.dtype == torch.long
        mismatched = (got != expected).any(dim=1).nonzero().flatten().tolist()
        assert not mismatched, f'input_ids differ for {chunk[mismatched[0]]!r}'
        for row in range(0, len(chunk), 97):
            assert ours.decode_text(got[row]) == theirs.decode_text(expected[row])


def test_pixel_values_identical_on_varied_images(original, checkpoint_factory):
    folder = checkpoint_factory('ruclip-vit-base-patch32-384')
    ours = ruclip.RuCLIPProcessor.from_pretrained(folder)
    theirs = original.processor.RuCLIPProcessor.from_pretrained(str(folder))
    for description, image in varied_images():
        width, height = image.size
        got = ours(images=[image])['pixel_values']
        if abs(width - height) == 1:
            continue  # the original draws the crop offset at random here: see the test below
        if image.mode == 'I;16':  # a deliberate difference: the original clips it to white, ours scales it
            assert torch.equal(theirs(images=[image])['pixel_values'], _white(theirs)), description
            image = Image.fromarray((np.asarray(image) // 257).astype(np.uint8))  # the 8-bit picture it holds
        expected = theirs(images=[image])['pixel_values']
        assert got.shape == expected.shape == (1, 3, 384, 384), description
        assert torch.equal(got, expected), description


def _white(processor) -> torch.Tensor:
    return processor(images=[Image.new('RGB', (384, 384), 'white')])['pixel_values']


@pytest.mark.parametrize('size', [(225, 224), (224, 225), (385, 384), (2, 1)])
def test_off_by_one_aspect_takes_one_of_the_originals_random_crops(original, tiny_checkpoint, size):
    """When W and H differ by one pixel the original picks offset 0 or 1 at random; ours is always
    (long - short) // 2 = 0, one of the original's outcomes, and leaves torch's random state alone."""
    ours = ruclip.RuCLIPProcessor.from_pretrained(tiny_checkpoint)
    theirs = original.processor.RuCLIPProcessor.from_pretrained(str(tiny_checkpoint))
    image = rgb_image(*size, seed=3)
    outcomes = []
    for seed in range(12):
        torch.manual_seed(seed)
        outcomes.append(theirs(images=[image])['pixel_values'])
    distinct = [o for i, o in enumerate(outcomes) if not any(torch.equal(o, p) for p in outcomes[:i])]
    assert len(distinct) == 2  # the original really is random here

    state = torch.get_rng_state()
    got = ours(images=[image])['pixel_values']
    assert torch.equal(torch.get_rng_state(), state)
    assert any(torch.equal(got, o) for o in distinct)
    crop = image.crop((0, 0, min(size), min(size)))  # offset 0 on the longer side
    assert torch.equal(got, theirs(images=[crop])['pixel_values'])


def test_encoders_match(pair):
    (clip, processor), (their_clip, their_processor) = pair
    texts = varied_texts(40, seed=11) + ['кошка', 'собака на фото', '']
    images = [image for _, image in varied_images()[::3]]
    input_ids = their_processor(text=texts)['input_ids']
    pixel_values = their_processor(images=[i for i in images if abs(i.size[0] - i.size[1]) != 1])['pixel_values']
    with torch.no_grad():
        torch.testing.assert_close(clip.encode_text(input_ids), their_clip.encode_text(input_ids), atol=ATOL, rtol=0)
        torch.testing.assert_close(clip.encode_image(pixel_values), their_clip.encode_image(pixel_values),
                                   atol=ATOL, rtol=0)
        ours_logits = clip(input_ids[:5], pixel_values[:4])
        their_logits = their_clip(input_ids[:5], pixel_values[:4])
    for got, expected in zip(ours_logits, their_logits):
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def every_token_of_the_image(clip, pixel_values):
    """The original's VisionTransformer.forward up to ln_post, kept for every token: its own code."""
    v = clip.visual
    x = v.conv1(pixel_values)
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # [B, grid**2, width]
    cls = v.class_embedding + torch.zeros(x.shape[0], 1, x.shape[-1])
    x = torch.cat([cls, x], dim=1) + v.positional_embedding  # [B, grid**2 + 1, width]
    x = v.transformer(v.ln_pre(x).permute(1, 0, 2)).permute(1, 0, 2)  # NLD -> LND -> NLD
    return v.ln_post(x)


def every_token_of_the_text(clip, input_ids):
    """The original's encode_text before its eos pick: every token's state, its own code."""
    x = clip.token_embedding(input_ids) + clip.positional_embedding
    x = clip.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)  # NLD -> LND -> NLD
    return clip.ln_final(x)


def test_towers_called_the_originals_way_match(pair):
    """clip.transformer and clip.visual.transformer take the original's [T, B, width]."""
    (clip, processor), (their_clip, their_processor) = pair
    input_ids = their_processor(text=['кошка', 'собака на фото', ''])['input_ids']
    pixel_values = their_processor(images=[image for _, image in varied_images()[:3]])['pixel_values']
    with torch.no_grad():
        torch.testing.assert_close(every_token_of_the_text(clip, input_ids),
                                   every_token_of_the_text(their_clip, input_ids), atol=ATOL, rtol=0)
        torch.testing.assert_close(every_token_of_the_image(clip, pixel_values),
                                   every_token_of_the_image(their_clip, pixel_values), atol=ATOL, rtol=0)


def test_predictor_matches(pair, original):
    (clip, processor), (their_clip, their_processor) = pair
    classes = ['Кошка', 'собака ', 'птица', 'автомобиль', 'дом', 'дерево', 'человек', 'море', 'гора', 'цветок']
    images = [image for _, image in varied_images() if abs(image.size[0] - image.size[1]) != 1][:11]
    ours = ruclip.Predictor(clip, processor, 'cpu', bs=4, quiet=True)
    theirs = original.predictor.Predictor(their_clip, their_processor, 'cpu', bs=4)
    with torch.no_grad():
        text_latents = ours.get_text_latents(classes)
        their_text_latents = theirs.get_text_latents(classes)
        torch.testing.assert_close(text_latents, their_text_latents, atol=ATOL, rtol=0)
        torch.testing.assert_close(ours.get_image_latents(iter(images)), theirs.get_image_latents(iter(images)),
                                   atol=ATOL, rtol=0)
        assert ours.run(images, text_latents) == theirs.run(images, their_text_latents)


def test_custom_templates_match(original, tiny_checkpoint):
    clip, processor = ruclip.load(str(tiny_checkpoint))
    their_clip = original.model.CLIP.from_pretrained(str(tiny_checkpoint)).eval()
    their_processor = original.processor.RuCLIPProcessor.from_pretrained(str(tiny_checkpoint))
    templates = ['{}', 'это {}', 'на картинке {}', 'это {}, домашнее животное']
    ours = ruclip.Predictor(clip, processor, 'cpu', bs=8, templates=templates, quiet=True)
    theirs = original.predictor.Predictor(their_clip, their_processor, 'cpu', bs=8, templates=templates)
    labels = [f'класс номер {i}' for i in range(19)]
    with torch.no_grad():
        torch.testing.assert_close(ours.get_text_latents(labels), theirs.get_text_latents(labels), atol=ATOL, rtol=0)


def test_state_dict_keys_and_shapes_are_the_originals(original, checkpoint_factory):
    for arch in PARITY_ARCHITECTURES:
        folder = checkpoint_factory(arch)
        ours = ruclip.CLIP.from_pretrained(folder).state_dict()
        theirs = original.model.CLIP.from_pretrained(str(folder)).state_dict()
        assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
