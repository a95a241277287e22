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


@pytest.mark.slow  # a torchrun run killed, then resumed in this process
def test_a_run_of_two_processes_killed_resumes_on_one(shapes, tiny_checkpoint, tmp_path):
    import os
    import signal
    import time

    options = dict(epochs=4, batch_size=24, lr=1e-3, precision='fp32', seed=4, save_every=2, quiet=True)
    whole = finetune(tiny_checkpoint, [shapes['train']], tmp_path / 'whole', **options)
    out = tmp_path / 'killed'
    argv = ['--epochs', '4', '--batch-size', '24', '--lr', '1e-3', '--precision', 'fp32', '--seed', '4',
            '--save-every', '2', '-q']
    process = subprocess.Popen([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', '2',
                                '-m', 'ruclip', 'finetune', '--model', str(tiny_checkpoint), '--train',
                                str(shapes['train']), '--out', str(out), *argv],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 200
    while not (out / 'checkpoints' / 'last.pt').exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)  # torchrun and its two workers
    process.wait()
    assert not (out / 'model.safetensors').exists(), 'the run ended before it could be killed'

    resumed = finetune(tiny_checkpoint, [shapes['train']], out, resume=True, **options)
    assert resumed.steps == whole.steps == 20
    assert resumed.losses == pytest.approx(whole.losses, rel=1e-5)
    for name, tensor in whole.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], tensor, rtol=1e-4, atol=1e-5)
