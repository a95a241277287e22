"""RuCLIPProcessor: text framing, image inputs of every kind, and clear errors."""
import pytest
import torch
from PIL import Image

import ruclip
from helpers.images import encoded, rgb_image


@pytest.fixture(scope='module')
def processor(tiny_checkpoint):
    return ruclip.RuCLIPProcessor.from_pretrained(tiny_checkpoint)


def test_config_sets_size_length_and_normalisation(processor, tiny_config):
    assert processor.image_size == 224 and processor.text_seq_length == 77
    assert processor.mean == tiny_config['mean'] and processor.std == tiny_config['std']


def test_openai_mean_std_when_config_has_none(tmp_path, bpe_model, tiny_config):
    config = {k: v for k, v in tiny_config.items() if k not in ('mean', 'std')}
    (tmp_path / 'config.json').write_text(__import__('json').dumps(config))
    (tmp_path / 'bpe.model').write_bytes(open(bpe_model, 'rb').read())
    processor = ruclip.RuCLIPProcessor.from_pretrained(tmp_path)
    assert processor.mean == [0.48145466, 0.4578275, 0.40821073]
    assert processor.std == [0.26862954, 0.26130258, 0.27577711]


def test_text_is_lowercased_framed_cut_and_padded(processor):
    ids = processor(text=['КОШКА', 'кошка', 'слово ' * 300])['input_ids']
    assert ids.shape == (3, 77) and ids.dtype == torch.long
    assert torch.equal(ids[0], ids[1])
    n = int((ids[0] != 0).sum())
    assert ids[0, 0] == 2 and ids[0, n - 1] == 3 and (ids[0, n:] == 0).all()
    assert ids[2, 0] == 2 and ids[2, 76] == 3 and (ids[2] != 0).all()
    assert processor.decode_text(ids[0]) == 'кошка'
    assert processor(text='кошка')['input_ids'].shape == (1, 77)
    assert processor(text='')['input_ids'][0, :3].tolist() == [2, 3, 0]


def test_images_from_paths_bytes_and_pil_are_identical(processor, tmp_path):
    image = rgb_image(300, 200, seed=1)
    path = tmp_path / 'photo.png'
    image.save(path)
    from_pil = processor(images=[image])['pixel_values']
    assert from_pil.shape == (1, 3, 224, 224) and from_pil.dtype == torch.float32
    assert torch.equal(processor(images=[str(path)])['pixel_values'], from_pil)
    assert torch.equal(processor(images=[path])['pixel_values'], from_pil)
    assert torch.equal(processor(images=[encoded(image)])['pixel_values'], from_pil)
    assert torch.equal(processor(images=image)['pixel_values'], from_pil)


def test_both_inputs_in_one_call(processor):
    out = processor(text=['a', 'b', 'c'], images=[rgb_image(50, 40), rgb_image(40, 50)], return_tensors='pt', padding=True)
    assert out['input_ids'].shape == (3, 77) and out['pixel_values'].shape == (2, 3, 224, 224)


def test_bad_inputs_are_explained(processor, tmp_path):
    with pytest.raises(ValueError, match='text is empty'):
        processor(text=[])
    with pytest.raises(TypeError, match='every item of text must be a str, got int'):
        processor(text=['a', 5])
    with pytest.raises(TypeError, match=r'text must be a str or a list of str \(or any iterable of str\), got int'):
        processor(text=5)
    with pytest.raises(ValueError, match='images is empty'):
        processor(images=[])
    with pytest.raises(FileNotFoundError, match='image file not found: .*missing.jpg'):
        processor(images=[tmp_path / 'missing.jpg'])
    (tmp_path / 'broken.jpg').write_bytes(b'\xff\xd8 not really a jpeg')
    with pytest.raises(ValueError, match='cannot read image .*broken.jpg'):
        processor(images=[tmp_path / 'broken.jpg'])
    with pytest.raises(ValueError, match=r'cannot read image <5 bytes>'):
        processor(images=[b'abcde'])
    with pytest.raises(TypeError, match='an image must be a PIL.Image, a file path or bytes, got int'):
        processor(images=[3])
    with pytest.raises(ValueError, match='image has no pixels'):
        processor(images=[Image.new('RGB', (0, 5))])
    with pytest.raises(ValueError, match="cannot convert a La image to RGB"):
        processor(images=[Image.new('La', (5, 5))])
    with pytest.raises(ValueError, match="return_tensors must be 'pt'"):
        processor(text='a', return_tensors='np')


def test_missing_tokenizer_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothing.model'):
        ruclip.RuCLIPProcessor(tmp_path / 'nothing.model')


def test_text_may_be_any_iterable_of_str(processor):
    import numpy as np
    expected = processor(text=['кот', 'дом'])['input_ids']
    assert torch.equal(processor(text=np.array(['кот', 'дом']))['input_ids'], expected)
    assert torch.equal(processor(text=(t for t in ['кот', 'дом']))['input_ids'], expected)


def test_changing_text_seq_length_cuts_cached_texts_anew(processor, monkeypatch):
    text = 'кот собака дом ' * 10
    full = processor(text=text)['input_ids']
    monkeypatch.setattr(processor, 'text_seq_length', 20)
    short = processor(text=text)['input_ids']
    assert short.shape == (1, 20) and short[0, -1] == processor.eos_id
    assert torch.equal(short[0, :19], full[0, :19])


def test_decode_text_takes_one_row_and_explains_a_batch(processor):
    input_ids = processor(text=['кот дом', 'собака'])['input_ids']
    assert processor.decode_text(input_ids[:1]) == processor.decode_text(input_ids[0]) == 'кот дом'
    with pytest.raises(ValueError, match=r'got 2 rows: \[processor.decode_text\(row\) for row in input_ids\]'):
        processor.decode_text(input_ids)


def test_mean_and_std_must_be_three_numbers(bpe_model):
    with pytest.raises(ValueError, match=r'mean must be 3 numbers \(one per RGB channel\), got \[0.1, 0.2\]'):
        ruclip.RuCLIPProcessor(bpe_model, mean=[0.1, 0.2])
    with pytest.raises(ValueError, match='std must be 3 numbers'):
        ruclip.RuCLIPProcessor(bpe_model, std=0.5)


def test_one_path_is_one_image(processor, tmp_path):
    rgb_image(50, 40).save(tmp_path / 'a.png')
    assert torch.equal(processor(images=tmp_path / 'a.png')['pixel_values'],
                       processor(images=[str(tmp_path / 'a.png')])['pixel_values'])
