"""Offline loading sends no request at all, and a Hub that cannot be reached fails fast (no retries)."""
import socket
import time

import pytest

import ruclip
from helpers.fake_hub import FakeHub, point_hub_client_at

NAME = 'ruclip-vit-base-patch32-224'
REPO = f'ai-forever/{NAME}'


@pytest.fixture
def no_connections(monkeypatch):
    """Any TCP connection attempt from this process fails the test."""
    attempts = []

    def connect(self, address):
        attempts.append(address)
        raise AssertionError(f'a connection to {address} was attempted')
    monkeypatch.setattr(socket.socket, 'connect', connect)
    monkeypatch.setattr(socket.socket, 'connect_ex', connect)
    return attempts


@pytest.fixture
def closed_port():
    """An address on which nothing listens: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    return f'http://127.0.0.1:{port}'


@pytest.fixture
def no_retries(monkeypatch):
    """The Hub client waits between retries with time.sleep: any wait fails the test."""
    import huggingface_hub.utils._http as http

    def sleep(seconds):
        raise AssertionError(f'the Hub client was left to retry (it slept {seconds} s)')
    monkeypatch.setattr(http.time, 'sleep', sleep)


def test_local_files_only_sends_no_request_at_all(monkeypatch, tmp_path, tiny_checkpoint):
    with FakeHub() as hub:
        hub.add_folder(REPO, tiny_checkpoint)
        point_hub_client_at(monkeypatch, hub.url)
        ruclip.load(NAME, cache_dir=tmp_path)  # online: fills the cache
        assert hub.file_requests()
        hub.requests.clear()
        attempts = []
        monkeypatch.setattr(socket.socket, 'connect', lambda self, address: attempts.append(address))
        clip, processor = ruclip.load(NAME, cache_dir=tmp_path, local_files_only=True)
        ruclip.load(NAME, cache_dir=tmp_path, local_files_only=True, revision='main')
        time.sleep(0.2)  # a telemetry thread would have sent by now
        assert hub.requests == [] and attempts == []
    assert clip.config.image_resolution == 224


def test_local_files_only_and_not_cached_names_the_file_without_a_request(tmp_path, no_connections):
    with pytest.raises(FileNotFoundError, match=rf'{REPO}/bpe.model is not in {tmp_path} and downloading is off'):
        ruclip.load(NAME, cache_dir=str(tmp_path), local_files_only=True)
    assert no_connections == []


def test_an_unreachable_hub_fails_at_once_when_the_model_is_not_cached(monkeypatch, tmp_path, closed_port,
                                                                         no_retries):
    point_hub_client_at(monkeypatch, closed_port)
    with pytest.raises(FileNotFoundError, match=rf'{REPO}/bpe.model is not in {tmp_path} and {closed_port} cannot '
                                                rf'be reached \(.*refused.*\); load it once online first'):
        ruclip.load(NAME, cache_dir=str(tmp_path))


def test_an_unreachable_hub_loads_a_cached_model(monkeypatch, hub_cache, closed_port, no_retries, tiny_checkpoint):
    point_hub_client_at(monkeypatch, closed_port)
    clip, _ = ruclip.load(NAME, cache_dir=str(hub_cache))
    assert clip.config == ruclip.CLIP.from_pretrained(tiny_checkpoint).config


def test_a_proxy_is_left_to_the_hub_client(monkeypatch):
    from ruclip.pretrained import _unreachable
    monkeypatch.setenv('HTTPS_PROXY', 'http://proxy.invalid:3128')
    assert _unreachable('https://hub.invalid') is None  # no connection is tried
    monkeypatch.delenv('HTTPS_PROXY')
    for name in ('HTTP_PROXY', 'http_proxy', 'https_proxy', 'ALL_PROXY', 'all_proxy'):
        monkeypatch.delenv(name, raising=False)
    assert 'cannot be reached' in _unreachable('http://127.0.0.1:1')


def test_the_offline_environment_variable_reads_the_cache_only(monkeypatch, hub_cache, no_connections):
    import huggingface_hub.constants as constants
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)  # what HF_HUB_OFFLINE=1 sets at import
    clip, _ = ruclip.load(NAME, cache_dir=str(hub_cache))
    assert no_connections == [] and clip.config.image_resolution == 224
