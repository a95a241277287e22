"""benchmarks/bench_train.py times the same computation on both sides: open_clip's CLIP holding our
weights gives our loss on the same batch, in full and locked-image modes."""
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import ruclip

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'benchmarks'))
bench_train = pytest.importorskip('bench_train', reason='needs open_clip (open-clip-torch)')


@pytest.mark.parametrize('mode', ['full', 'lock-image'])
def test_open_clip_gives_our_first_loss_on_the_same_weights_and_batch(mode, tiny_checkpoint):
    ours, processor = ruclip.load(tiny_checkpoint)
    ours.train()
    theirs = bench_train.open_clip_model(ours)
    rows = [processor.tokenize(caption) for caption in bench_train.CAPTIONS]
    ids, padded = processor.pad(rows, length=max(map(len, rows))), processor.pad(rows)
    pixels = torch.randn(len(rows), 3, 224, 224)
    latents = None
    if mode == 'lock-image':
        ours.visual.requires_grad_(False)
        theirs.lock_image_tower()
        with torch.no_grad():
            latents = F.normalize(ours.encode_image(pixels), dim=-1)
    our_loss = bench_train.ours_step(ours, mode, pixels, latents, ids, nullcontext)()
    their_loss = bench_train.open_clip_step(theirs, pixels, padded, nullcontext)()
    assert our_loss == pytest.approx(their_loss, rel=1e-5)
