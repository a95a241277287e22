"""torchrun --nproc-per-node 2 (gloo on the CPU) trains as one process with the same global batch:
the same loss at every step and the same final weights, to float rounding."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ruclip.training import finetune

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # two fresh processes, each importing torch
def test_two_processes_train_as_one_with_the_same_global_batch(shapes, tiny_checkpoint, tmp_path):
    options = ['--epochs', '1', '--batch-size', '24', '--lr', '1e-3', '--precision', 'fp32', '--seed', '3', '-q']
    one = finetune(tiny_checkpoint, [shapes['train']], tmp_path / 'one', epochs=1, batch_size=24, lr=1e-3,
                   precision='fp32', seed=3, quiet=True)
    two = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone',
                          '--nproc-per-node', '2', '-m', 'ruclip', 'finetune', '--model', str(tiny_checkpoint),
                          '--train', str(shapes['train']), '--out', str(tmp_path / 'two'), *options],
                         cwd=REPO, capture_output=True, text=True, timeout=240)
    assert two.returncode == 0, two.stderr[-3000:]
    report = json.loads((tmp_path / 'two' / 'training_report.json').read_text())
    assert report['losses'] == pytest.approx(one.losses, rel=1e-5)
    expected, got = load_file(tmp_path / 'one' / 'model.safetensors'), load_file(tmp_path / 'two' / 'model.safetensors')
    for name in expected:
        # Adam turns float rounding in a near-zero gradient into ~1e-6 of a weight
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-5)
