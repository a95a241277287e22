"""A ruclip command or ruclip.load makes no network request the user did not ask for: OpenVINO's and
NNCF's usage telemetry stay off (and write no client id into the home folder), the user's environment
is left as it was, and `-q` on a first run (a download, an int8 build) leaves stderr empty.

Each case runs in a child process (NNCF turns its telemetry off by itself under pytest), whose every
connection attempt and name lookup is written to a file by an audit hook; the telemetry sends from a
forked process, which inherits the hook and appends to the same file.
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers.fake_hub import FakeHub
from helpers.images import rgb_image

pytest.importorskip('openvino')  # the [openvino] extra, with NNCF for int8
pytest.importorskip('nncf')

REPO = Path(__file__).resolve().parents[2]
CLIENT_ID = 'openvino_ga_cid'  # what openvino_telemetry writes under ~/intel before it sends
AUDIT = textwrap.dedent('''
    import os, sys

    def record(event, args):
        if event in ('socket.connect', 'socket.getaddrinfo'):
            with open(os.environ['CONNECTIONS_LOG'], 'a') as log:
                log.write(f'{event} {args!r}\\n')

    sys.addaudithook(record)
''')


def run_child(code: str, tmp_path: Path, *args, **environment) -> subprocess.CompletedProcess:
    """`code` after the audit hook, in a child with an empty HOME, a fresh OpenVINO cache and none of the
    variables that would turn the telemetry off by themselves (a CI job sets CI=true)."""
    env = {name: value for name, value in os.environ.items()
           if name not in ('CI', 'TF_BUILD', 'JENKINS_URL', 'NNCF_CI', 'NNCF_DEV')}
    (tmp_path / 'home').mkdir()
    env.update(HOME=str(tmp_path / 'home'), RUCLIP_OPENVINO_CACHE=str(tmp_path / 'openvino'),
               CONNECTIONS_LOG=str(tmp_path / 'connections.log'), **environment)
    return subprocess.run([sys.executable, '-c', AUDIT + textwrap.dedent(code), *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240)


def connections(tmp_path: Path) -> list:
    log = tmp_path / 'connections.log'
    return log.read_text().splitlines() if log.exists() else []


def client_ids(tmp_path: Path) -> list:
    return sorted(str(path) for path in (tmp_path / 'home').rglob(CLIENT_ID))


def test_models_and_an_openvino_load_make_no_request_and_leave_the_environment_as_it_was(tmp_path, tiny_checkpoint):
    result = run_child('''
        import json
        before = {name: os.environ.get(name) for name in ('CI', 'NNCF_CI')}
        from ruclip.cli import main
        assert main(['models']) == 0
        import ruclip
        clip, _ = ruclip.load(sys.argv[1], backend='openvino')  # builds, then imports, its fp32 entry
        assert clip.backend == 'openvino'
        after = {name: os.environ.get(name) for name in ('CI', 'NNCF_CI')}
        assert before == after, (before, after)
    ''', tmp_path, tiny_checkpoint)
    assert result.returncode == 0, result.stderr
    assert connections(tmp_path) == [] and client_ids(tmp_path) == []


@pytest.mark.slow
def test_a_first_quiet_run_prints_nothing_on_stderr_and_asks_only_the_hub(tmp_path, checkpoint_factory):
    """classify -q with the defaults, as a new user's first command: the model is downloaded, its int8
    entry built by NNCF (whose import would make torch warn of a missing CUDA runtime where CUDA_HOME
    is set); no progress bar, no warning, and no request but the download's."""
    image = tmp_path / 'photo.png'
    rgb_image(40, 30).save(image)
    with FakeHub() as hub:
        hub.add_folder('ai-forever/ruclip-vit-base-patch32-384', checkpoint_factory('ruclip-vit-base-patch32-384'))
        result = run_child('''
            from ruclip.cli import main
            sys.exit(main(sys.argv[1:]))
        ''', tmp_path, 'classify', '-q', image, '--labels', 'кошка', 'собака', HF_ENDPOINT=hub.url,
            HF_HOME=str(tmp_path / 'hf'), CUDA_HOME=str(tmp_path), HF_HUB_OFFLINE='0')
        assert hub.file_requests()  # the download the user asked for
    assert result.returncode == 0, result.stderr
    assert result.stderr == ''
    assert 'кошка' in result.stdout
    port = hub.url.rsplit(':', 1)[1]
    assert [line for line in connections(tmp_path) if port not in line] == []
    assert client_ids(tmp_path) == []
    assert any(name.startswith('int8-') for name in os.listdir(tmp_path / 'openvino'))
