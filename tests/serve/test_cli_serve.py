"""`ruclip serve --model`: the API alone, request logs on stderr, a warning when it listens beyond this machine."""
import os
import subprocess
import sys

import httpx
import pytest

from ruclip.cli import main

pytest.importorskip('fastapi')  # the [serve] extra


def test_serve_a_model_on_every_address_warns_and_logs(tiny_checkpoint):
    command = [sys.executable, '-m', 'ruclip', 'serve', '--model', str(tiny_checkpoint), '--host', '0.0.0.0',
               '--port', '0', '--max-batch', '8', '--backend', 'torch']
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONPATH=os.getcwd()))
    try:
        line = process.stdout.readline()
        assert line.startswith(f'serving {tiny_checkpoint} at http://0.0.0.0:'), line
        url = 'http://127.0.0.1:' + line.split(' at ')[1].split(':')[2].split('/')[0]
        models = httpx.get(f'{url}/v1/models', timeout=30).json()
        assert models['data'][0]['id'] == str(tiny_checkpoint)
        assert httpx.get(f'{url}/', timeout=30).status_code == 404  # no index: no page
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert 'warning: listening on 0.0.0.0 without --api-key' in stderr
    assert '"GET /v1/models" 200' in stderr and '"GET /" 404' in stderr


def test_bad_options_exit_2(tiny_checkpoint, capsys):
    assert main(['serve', '--model', str(tiny_checkpoint), '--max-wait-ms', '-1']) == 2
    assert '--max-wait-ms must be 0 or more' in capsys.readouterr().err
    assert main(['serve', '--model', str(tiny_checkpoint), '--port', '70000']) == 2
    assert '--port must be between 0 and 65535' in capsys.readouterr().err


def test_without_index_or_model_says_what_to_give(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('RUCLIP_INDEX', str(tmp_path / 'none.index'))
    assert main(['serve']) == 2
    assert 'give --model NAME to serve the API alone' in capsys.readouterr().err
