"""CLIPConfig: config.json's fields, checked as the original's constructor needs them."""
import json

import numpy as np
import pytest

import ruclip
from ruclip.config import CLIPConfig


@pytest.fixture
def architecture(tiny_config):
    return {k: v for k, v in tiny_config.items() if k not in ('mean', 'std')}


def test_numpy_integers_are_integers(architecture):
    config = CLIPConfig(**dict(architecture, embed_dim=np.int64(24), vision_layers=np.int32(2)))
    assert config.embed_dim == 24 and type(config.embed_dim) is int
    json.dumps(config.to_dict())
    assert ruclip.CLIP(**dict(architecture, embed_dim=np.int64(24))).config.embed_dim == 24


@pytest.mark.parametrize('value', [0, -3, 2.0, '24', True, None])
def test_a_size_that_is_not_a_positive_integer_is_named(architecture, value):
    with pytest.raises(ValueError, match=rf'config embed_dim must be a positive integer, got {value!r}'):
        CLIPConfig(**dict(architecture, embed_dim=value))


@pytest.mark.parametrize('width, heads', [(64, 1), (96, 1), (128, 2), (192, 3), (1024, 16)])
def test_vision_width_takes_width_over_64_heads_as_the_original(architecture, width, heads):
    clip = ruclip.CLIP(**dict(architecture, vision_width=width))
    assert clip.config.vision_heads == heads and clip.visual.transformer.resblocks[0].attn.heads == heads


@pytest.mark.parametrize('width', [32, 200])
def test_vision_width_that_its_heads_do_not_divide_is_refused(architecture, width):
    with pytest.raises(ValueError, match=rf'config vision_width \({width}\) must be at least 64 and divisible'):
        CLIPConfig(**dict(architecture, vision_width=width))


@pytest.mark.parametrize('key, value, message', [
    ('mean', 0.5, r'config mean must be 3 numbers \(one per RGB channel\), got 0.5'),
    ('std', [0.2, 0.2], r'config std must be 3 numbers'),
    ('std', ['a', 'b', 'c'], r'config std must be 3 numbers'),
    ('std', [0.25, 0, 0.27], r'config std must be positive \(pixels are divided by it\), got \[0.25, 0.0, 0.27\]'),
], ids=['mean-one-number', 'std-two-numbers', 'std-letters', 'std-zero'])
def test_bad_mean_or_std_in_config_json_is_named(tmp_path, tiny_config, key, value, message):
    path = tmp_path / 'config.json'
    path.write_text(json.dumps(dict(tiny_config, **{key: value})))
    with pytest.raises(ValueError, match=message):
        CLIPConfig.from_file(path)


def test_to_dict_round_trips_mean_and_std(tiny_config):
    config = CLIPConfig.from_dict(tiny_config)
    assert config.to_dict() == tiny_config
    assert CLIPConfig.from_dict(config.to_dict()) == config
