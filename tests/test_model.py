"""CLIP: shapes for all six architectures, reduced precision, input checks."""
import pytest
import torch

import ruclip
from helpers.checkpoints import TINY_ARCHITECTURES


@pytest.fixture(scope='module')
def clip(tiny_checkpoint):
    return ruclip.CLIP.from_pretrained(tiny_checkpoint)


def ids(rows, length=77):
    """Rows of BPE ids -> [len(rows), length] framed with bos/eos and zero-padded."""
    out = torch.zeros(len(rows), length, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, :len(row) + 2] = torch.tensor([2] + row + [3])
    return out


@pytest.mark.parametrize('arch', sorted(TINY_ARCHITECTURES))
def test_every_architecture_encodes(arch, checkpoint_factory):
    clip = ruclip.CLIP.from_pretrained(checkpoint_factory(arch))
    size = TINY_ARCHITECTURES[arch]['image_resolution']
    with torch.inference_mode():
        image_latents = clip.encode_image(torch.randn(2, 3, size, size))
        text_latents = clip.encode_text(ids([[10, 11], [12]]))
        logits_per_image, logits_per_text = clip(ids([[10, 11], [12], [5]]), torch.randn(2, 3, size, size))
    assert image_latents.shape == text_latents.shape == (2, 24)
    assert logits_per_image.shape == (2, 3) and torch.equal(logits_per_text, logits_per_image.t())
    grid = size // TINY_ARCHITECTURES[arch]['vision_patch_size']
    assert clip.visual.positional_embedding.shape == (grid ** 2 + 1, TINY_ARCHITECTURES[arch]['vision_width'])


def test_trimming_after_the_last_eos_changes_nothing(clip):
    """Attention is causal: a long row next to short ones must give each row's latent alone."""
    rows = [[10, 11, 12], [40] * 60, [7]]
    together = clip.encode_text(ids(rows))
    alone = torch.cat([clip.encode_text(ids([row])) for row in rows])
    torch.testing.assert_close(together, alone, atol=1e-6, rtol=0)
    untrimmed = ids([[10, 11, 12]])
    untrimmed[0, 5:] = 99  # junk after eos must not matter
    torch.testing.assert_close(clip.encode_text(untrimmed), clip.encode_text(ids([[10, 11, 12]])), atol=1e-6, rtol=0)


def test_sdpa_attention_equals_nn_multihead_attention(clip):
    block = clip.transformer.resblocks[0]
    mha = torch.nn.MultiheadAttention(32, 2, batch_first=True)
    mha.load_state_dict(block.attn.state_dict())
    x = torch.randn(3, 9, 32)
    mask = torch.full((9, 9), float('-inf')).triu(1)
    expected = mha(x, x, x, need_weights=False, attn_mask=mask)[0]
    torch.testing.assert_close(block.attn(x, causal=True), expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_reduced_precision_is_close_to_fp32(tiny_checkpoint, clip, dtype):
    low = ruclip.CLIP.from_pretrained(tiny_checkpoint, dtype=dtype)
    assert low.dtype == dtype
    assert low.ln_final.weight.dtype == dtype  # LayerNorm runs in fp32 internally, weights stay as loaded
    pixels = torch.randn(3, 3, 224, 224)
    texts = ids([[10, 11], [12, 13, 14, 15], [9]])
    with torch.inference_mode():
        for got, expected in [(low.encode_image(pixels), clip.encode_image(pixels)),
                              (low.encode_text(texts), clip.encode_text(texts))]:
            assert got.dtype == dtype
            cosine = torch.nn.functional.cosine_similarity(got.float(), expected, dim=-1)
            assert cosine.min() > 0.99


def test_encode_image_checks_its_input(clip):
    with pytest.raises(ValueError, match=r'pixel_values must have shape \[batch, 3, 224, 224\].*got \[2, 3, 384, 384\]'):
        clip.encode_image(torch.zeros(2, 3, 384, 384))
    with pytest.raises(TypeError, match='pixel_values must be a torch.Tensor, got list'):
        clip.encode_image([[0.0]])
    with pytest.raises(ValueError, match='pixel_values is empty: encode at least one image'):
        clip.encode_image(torch.empty(0, 3, 224, 224))
    with pytest.raises(ValueError, match='pixel_values must be floats .* got torch.uint8'):
        clip.encode_image(torch.zeros(2, 3, 224, 224, dtype=torch.uint8))


@pytest.mark.parametrize('dtype', [torch.int8, torch.int16, torch.uint8, torch.int32])
def test_encode_text_takes_any_integer_ids(clip, dtype):
    input_ids = ids([[10, 120], [127]])  # 120 and 127 are over 600 % 256: a uint8 comparison with 600 wraps
    torch.testing.assert_close(clip.encode_text(input_ids.to(dtype)), clip.encode_text(input_ids), atol=0, rtol=0)


@pytest.mark.parametrize('bad_id', [600, 70000, -5])
def test_encode_text_names_an_id_outside_the_vocabulary(clip, bad_id):
    input_ids = ids([[10, 11], [12, bad_id]])
    with pytest.raises(ValueError, match=rf'input_ids row 1 holds id {bad_id}, outside this model\'s vocabulary '
                                         rf'of 600 ids \(0 to 599\)'):
        clip.encode_text(input_ids)


def test_encode_text_checks_its_input(clip):
    with pytest.raises(ValueError, match='row 1 has no eos token'):
        clip.encode_text(torch.tensor([[2, 10, 3], [2, 10, 11]]))
    with pytest.raises(ValueError, match='integer tensor'):
        clip.encode_text(torch.zeros(2, 77))
    with pytest.raises(ValueError, match='at most 77'):
        clip.encode_text(torch.full((1, 80), 3))
    with pytest.raises(ValueError, match='empty'):
        clip.encode_text(torch.zeros(0, 77, dtype=torch.long))
    with pytest.raises(TypeError, match='input_ids must be a torch.Tensor'):
        clip.encode_text([[2, 3]])


def test_config_keeps_the_files_mean_and_std(clip, tiny_config):
    assert clip.config.image_mean == tuple(tiny_config['mean'])
    assert clip.config.image_std == tuple(tiny_config['std'])
    assert clip.config.to_dict() == tiny_config


def test_constructor_takes_the_originals_arguments(tiny_config):
    kwargs = {k: v for k, v in tiny_config.items() if k not in ('mean', 'std')}
    model = ruclip.CLIP(**kwargs)
    assert model.context_length == 77 and model.eos_id == 3
    assert model.logit_scale.item() == pytest.approx(torch.log(torch.tensor(1 / 0.07)).item())
    assert ruclip.CLIP(**dict(kwargs, vision_width=100)).visual.transformer.resblocks[0].attn.heads == 1
