"""The benchmarks' FLOP accounting, on which their percentages rest (never their timings)."""
import sys
from pathlib import Path

import pytest
import torch

import ruclip
from helpers.checkpoints import TINY_ARCHITECTURES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'benchmarks'))
import bench  # noqa: E402
import tower_anatomy  # noqa: E402


@pytest.mark.parametrize('arch', ['ruclip-vit-base-patch32-224', 'ruclip-vit-large-patch14-336'])
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_recorded_matmuls_and_attention_add_up_to_the_tower_flops(checkpoint_factory, arch, dtype):
    """tower_anatomy counts FLOPs from the ops one encode_image runs; bench.tower_flops from the
    architecture. Each must agree with the other, with the attention kernels found."""
    clip, processor = ruclip.load(str(checkpoint_factory(arch)), dtype=dtype)
    # one round and a 32^3 reference matmul: only the counts matter, and a bf16 matmul is slow on CPUs without bf16 units
    result = tower_anatomy.anatomy(clip, processor, 'cpu', repeats=0, batch=3, plain_size=32)
    batch, flops = result['batch'], result['flops']
    assert batch == 3
    assert flops['attention'] > 0 and flops['matmuls'] > 0
    assert flops['tower'] == bench.tower_flops(TINY_ARCHITECTURES[arch], batch, class_token_last=True)
    assert flops['tower'] < bench.tower_flops(TINY_ARCHITECTURES[arch], batch)  # the original's, last block whole
    assert all(seconds >= 0 for seconds in result['seconds'].values())
    text = tower_anatomy.report(dict(result, model=arch), result['plain_rate'])
    assert text.startswith(f'{arch} {result["dtype"]}, batch 3: tower') and 'ceiling' in text
