"""Every number a checkpoint holds is checked before any work: config.json's sizes and mean/std, then the
weights' names, shapes and dtypes against it (before the network is built), then their values."""
import json
import math
import shutil

import pytest
import torch

import ruclip
from helpers.checkpoints import TINY_ARCHITECTURES
from ruclip._layout import parameter_shapes
from ruclip.config import CLIPConfig

FULL_SIZE = {  # openai-CLIP's shapes at RuCLIP's sizes, as benchmarks/bench.py builds them
    'base-patch16-384': dict(embed_dim=512, vision_width=768, vision_layers=12, image_resolution=384,
                             vision_patch_size=16, transformer_width=512, transformer_heads=8, transformer_layers=12),
    'large-patch14-336': dict(embed_dim=768, vision_width=1024, vision_layers=24, image_resolution=336,
                              vision_patch_size=14, transformer_width=768, transformer_heads=12, transformer_layers=12),
}


@pytest.fixture
def folder(tmp_path, tiny_checkpoint):
    return shutil.copytree(tiny_checkpoint, tmp_path / 'checkpoint')


@pytest.fixture
def never_built(monkeypatch):
    """Fails the test if a CLIP is constructed: the checks must come first."""
    def build(*args, **kwargs):
        raise AssertionError('the network was built before the checkpoint was checked')
    monkeypatch.setattr(ruclip.CLIP, '__init__', build)


def edit_config(folder, **changes):
    path = folder / 'config.json'
    path.write_text(json.dumps(dict(json.loads(path.read_text()), **changes)))


def replace_weight(folder, name, value, weights='bin'):
    state_dict = torch.load(folder / 'pytorch_model.bin', weights_only=True)
    state_dict[name] = value
    if weights == 'safetensors':
        from safetensors.torch import save_file
        (folder / 'pytorch_model.bin').unlink()
        save_file(state_dict, str(folder / 'model.safetensors'))
    else:
        torch.save(state_dict, folder / 'pytorch_model.bin')


@pytest.mark.parametrize('config', [dict(arch, vocab_size=600) for arch in TINY_ARCHITECTURES.values()] +
                         [dict(arch, context_length=77, vocab_size=49408) for arch in FULL_SIZE.values()])
def test_shapes_known_from_the_config_are_the_networks(config):
    with torch.device('meta'):
        expected = {name: tuple(t.shape) for name, t in ruclip.CLIP(**config).state_dict().items()}
    assert parameter_shapes(CLIPConfig(**config)) == expected


@pytest.mark.parametrize('key, value, message', [
    ('vision_layers', 100_000, 'config vision_layers must be at most 256, got 100000'),
    ('transformer_layers', 10 ** 9, 'config transformer_layers must be at most 256'),
    ('vision_width', 2 ** 40, 'config vision_width must be at most 16384'),
    ('transformer_width', 2 ** 31, 'config transformer_width must be at most 16384'),
    ('embed_dim', 10 ** 6, 'config embed_dim must be at most 16384'),
    ('context_length', 10 ** 7, 'config context_length must be at most 8192'),
    ('vocab_size', 10 ** 12, 'config vocab_size must be at most'),
    ('vision_patch_size', 448, r'config vision_patch_size \(448\) must be at most image_resolution \(224\)'),
    ('transformer_heads', 64, r'config transformer_width \(32\) must be divisible by transformer_heads \(64\)'),
    ('transformer_heads', 3, r'config transformer_width \(32\) must be divisible by transformer_heads \(3\)'),
])
def test_an_absurd_or_inconsistent_size_is_named_before_anything_is_built(folder, never_built, key, value, message):
    edit_config(folder, **{key: value})
    with pytest.raises(ValueError, match=message):
        ruclip.load(str(folder))


def test_too_many_patches_are_named(tiny_config):
    with pytest.raises(ValueError, match='gives 1048576 patches, more than 65536'):
        CLIPConfig.from_dict(dict(tiny_config, image_resolution=4096, vision_patch_size=4))


@pytest.mark.parametrize('key, value, message', [
    ('mean', [0.5, math.nan, 0.4], 'config mean must be finite numbers'),
    ('std', [0.25, math.inf, 0.27], 'config std must be finite numbers'),
    ('std', [0.25, 5e-324, 0.27], 'config std must be at least 1e-06'),  # a denormal
    ('std', [0.25, 1e-30, 0.27], 'config std must be at least 1e-06'),
    ('mean', [1e300, 0.5, 0.5], r'config mean must be within \+-1000'),
])
def test_a_mean_or_std_that_would_give_nan_or_huge_pixels_is_named(folder, key, value, message):
    path = folder / 'config.json'
    # json.dumps writes NaN and Infinity, which json.loads reads back, as Python's json does
    path.write_text(json.dumps(dict(json.loads(path.read_text()), **{key: value})))
    with pytest.raises(ValueError, match=message):
        ruclip.load(str(folder))


def test_weights_for_another_config_are_named_before_anything_is_built(folder, never_built):
    edit_config(folder, vision_layers=3, embed_dim=32)
    with pytest.raises(ValueError, match=r'checkpoint does not match config.json: missing keys '
                                         r'\[.visual.transformer.resblocks.2.*shape mismatches'):
        ruclip.load(str(folder))


@pytest.mark.parametrize('weights', ['bin', 'safetensors'])
@pytest.mark.parametrize('dtype', [torch.int64, torch.int8, torch.bool])
def test_integer_weights_are_named(folder, weights, dtype, never_built):
    shape = json.loads((folder / 'config.json').read_text())['vision_width']
    replace_weight(folder, 'visual.ln_post.bias', torch.zeros(shape, dtype=dtype), weights)
    name = str(dtype).replace('torch.', '')
    with pytest.raises(ValueError, match=rf'checkpoint tensors must be floating-point weights .*'
                                         rf'\[.visual.ln_post.bias: {name}.\]'):
        ruclip.load(str(folder))


@pytest.mark.parametrize('weights', ['bin', 'safetensors'])
@pytest.mark.parametrize('bad, counts', [(math.nan, '1 NaN, 0 infinite'), (math.inf, '0 NaN, 1 infinite'),
                                         (-math.inf, '0 NaN, 1 infinite')])
def test_non_finite_weights_are_named(folder, weights, bad, counts):
    state_dict = torch.load(folder / 'pytorch_model.bin', weights_only=True)
    tensor = state_dict['visual.proj'].clone()
    tensor[3, 5] = bad
    replace_weight(folder, 'visual.proj', tensor, weights)
    with pytest.raises(ValueError, match=rf'checkpoint weights must be finite numbers: \[.visual.proj \({counts} of'):
        ruclip.load(str(folder))


def test_a_value_beyond_float16s_range_is_named_when_loading_in_float16(folder):
    state_dict = torch.load(folder / 'pytorch_model.bin', weights_only=True)
    tensor = state_dict['text_projection'].clone()
    tensor[0, 0] = 1e6
    replace_weight(folder, 'text_projection', tensor)
    ruclip.load(str(folder))  # finite in float32
    with pytest.raises(ValueError, match=r'text_projection \(0 NaN, 1 infinite of 768, in float16\)'):
        ruclip.load(str(folder), dtype=torch.float16)


def test_large_finite_sums_are_no_false_alarm(folder):
    """float16 sums overflow long before float16 weights do: the element check has the last word."""
    state_dict = torch.load(folder / 'pytorch_model.bin', weights_only=True)
    replace_weight(folder, 'token_embedding.weight', torch.full_like(state_dict['token_embedding.weight'], 60000.0))
    clip, _ = ruclip.load(str(folder), dtype=torch.float16)
    assert clip.token_embedding.weight.dtype == torch.float16
