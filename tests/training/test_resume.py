"""A run killed with SIGKILL and resumed ends with the weights of a run never interrupted; a resume
with other options or data is refused, naming what differs."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from ruclip.training import finetune

REPO = Path(__file__).resolve().parents[2]
OPTIONS = dict(epochs=2, batch_size=8, lr=1e-3, precision='fp32', save_every=3, quiet=True, seed=5)


def _command(checkpoint, train, out, *extra):
    return [sys.executable, '-m', 'ruclip', 'finetune', '--model', str(checkpoint), '--train', str(train),
            '--out', str(out), '--epochs', '2', '--batch-size', '8', '--lr', '1e-3', '--precision', 'fp32',
            '--save-every', '3', '--seed', '5', '-q', *extra]


@pytest.mark.slow  # three runs, two of them fresh processes (each imports torch)
def test_sigkill_then_resume_gives_the_uninterrupted_weights(shapes, tiny_checkpoint, tmp_path):
    whole = finetune(tiny_checkpoint, [shapes['train']], tmp_path / 'whole', **OPTIONS)
    assert whole.steps == 30

    out = tmp_path / 'killed'
    process = subprocess.Popen(_command(tiny_checkpoint, shapes['train'], out), cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    checkpoint = out / 'checkpoints' / 'last.pt'
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, 'the run ended before it could be killed'
    assert not (out / 'model.safetensors').exists()

    resumed = subprocess.run(_command(tiny_checkpoint, shapes['train'], out, '--resume'), cwd=REPO,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    expected, got = load_file(tmp_path / 'whole' / 'model.safetensors'), load_file(out / 'model.safetensors')
    assert sorted(expected) == sorted(got)
    for name in expected:
        assert (expected[name] == got[name]).all(), name
    assert not [name for name in os.listdir(out / 'checkpoints') if 'partial' in name]
    steps = [line for line in (out / 'metrics.jsonl').read_text().splitlines() if '"event": "step"' in line]
    assert len(steps) == 30


def test_a_resume_with_other_options_or_data_is_refused(shapes, tiny_checkpoint, tmp_path):
    out = tmp_path / 'run'
    finetune(tiny_checkpoint, [shapes['train']], out, **dict(OPTIONS, epochs=1))
    with pytest.raises(ValueError, match=r'lr: 0\.001 -> 0\.002'):
        finetune(tiny_checkpoint, [shapes['train']], out, **dict(OPTIONS, epochs=1, lr=2e-3, resume=True))
    with pytest.raises(ValueError, match='train data'):
        finetune(tiny_checkpoint, [shapes['train_folder']], out, **dict(OPTIONS, epochs=1, resume=True))
    with pytest.raises(ValueError, match='holds a training run already'):
        finetune(tiny_checkpoint, [shapes['train']], out, **dict(OPTIONS, epochs=1))
