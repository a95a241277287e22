"""One rule per kind of argument, wherever the argument is taken."""
import numpy as np
import pytest
import torch

import ruclip
from ruclip.config import CLIPConfig
from ruclip.export.onnx import MIN_OPSET, check_opset


def test_counts_take_numpy_integers_everywhere():
    scores = torch.tensor([[0.1, 0.7, 0.2]])
    assert ruclip.top_k(scores, np.int64(2), ['a', 'b', 'c']).labels == [['b', 'c']]
    assert check_opset(np.int64(MIN_OPSET)) == MIN_OPSET
    latents = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1)
    assert ruclip.rank_latents(latents, latents, np.int32(1)).texts_per_image.indices.shape == (3, 1)


@pytest.mark.parametrize('bad', [0, 2.0, True, '2'])
def test_a_count_that_is_not_a_positive_integer_is_named(bad):
    with pytest.raises(ValueError, match=f'k must be a positive integer, got {bad!r}'):
        ruclip.top_k(torch.zeros(1, 3), bad)


@pytest.mark.parametrize('mean', [['0.5', '0.5', '0.5'], [True, 0, 0], [0.5, 0.5], 0.5])
def test_image_mean_follows_one_rule_in_config_and_processor(bpe_model, mean):
    with pytest.raises(ValueError, match=r'mean must be 3 numbers \(one per RGB channel\)'):
        ruclip.RuCLIPProcessor(bpe_model, mean=mean)
    config = dict(embed_dim=8, image_resolution=32, vision_layers=1, vision_width=64, vision_patch_size=16,
                  context_length=77, vocab_size=600, transformer_width=32, transformer_heads=1,
                  transformer_layers=1, mean=mean)
    with pytest.raises(ValueError, match=r'config mean must be 3 numbers \(one per RGB channel\)'):
        CLIPConfig(**config)


def test_image_mean_may_be_any_three_numbers(bpe_model):
    processor = ruclip.RuCLIPProcessor(bpe_model, mean=np.array([0.5, 0.5, 0.5]), std=(0.25, 0.25, 0.25))
    assert processor.mean == [0.5, 0.5, 0.5] and processor.std == [0.25, 0.25, 0.25]
