"""docs/serving.md's curl and openai examples run against a served tiny model."""
import re
import subprocess
from pathlib import Path

import pytest

from helpers.serving import live, png_bytes

pytest.importorskip('fastapi')  # the [serve] extra
pytest.importorskip('openai')  # in the [test] extra
from ruclip.serve import create_app  # noqa: E402

DOC = Path(__file__).resolve().parents[2] / 'docs' / 'serving.md'


def blocks(language: str):
    return re.findall(rf'```{language}\n(.*?)```', DOC.read_text(encoding='utf-8'), flags=re.S)


def test_the_examples_run(predictor, tmp_path, monkeypatch):
    import io

    from PIL import Image

    monkeypatch.chdir(tmp_path)
    Image.open(io.BytesIO(png_bytes(3))).convert('RGB').save('photo.jpg')
    curl = next(block for block in blocks('bash') if 'curl' in block)
    client = next(block for block in blocks('python') if 'OpenAI(' in block)
    with live(create_app(predictor, model_name='tiny')) as url:
        script = curl.replace('URL=http://127.0.0.1:8000', f'URL={url}').replace(' \\\n', ' ')
        outputs = [subprocess.run(['bash', '-c', f'set -e\n{line}'], capture_output=True, text=True, check=True).stdout
                   for line in [script.splitlines()[0] + '\n' + command for command in script.splitlines()[1:]]]
        assert all(output.startswith('{"') and '"error"' not in output for output in outputs), outputs
        namespace = {}
        exec(client.replace('http://127.0.0.1:8000', url), namespace)
    assert len(namespace['vectors']) == 2 and len(namespace['pictures'].data[0].embedding) == len(namespace['vectors'][0])
