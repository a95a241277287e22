"""Tiny RuCLIP checkpoints written in the exact Hub layout, shared by all tests."""
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from helpers.checkpoints import TINY_ARCHITECTURES, write_checkpoint
from helpers.fake_hub import FakeHub, point_hub_client_at

pytest_plugins = ['helpers.extras']  # --all-extras


BPE_MODEL = Path(__file__).resolve().parent / 'data' / 'bpe_600.model'


@pytest.fixture(scope='session')
def bpe_model():
    """A bpe.model made by youtokentome on the tests' Russian corpus (ids pad 0, unk 1, bos 2, eos 3),
    shipped in tests/data (see make_bpe.py there)."""
    return str(BPE_MODEL)


@pytest.fixture(scope='session')
def checkpoint_factory(tmp_path_factory, bpe_model):
    """make(arch='ruclip-vit-base-patch32-224', **options) -> folder with config.json, weights, bpe.model."""
    made = {}

    def make(arch='ruclip-vit-base-patch32-224', seed=0, **options):
        key = (arch, seed, tuple(sorted(options.items())))
        if key not in made:
            folder = tmp_path_factory.mktemp(arch)
            write_checkpoint(folder, TINY_ARCHITECTURES[arch], bpe_model, seed=seed, **options)
            made[key] = folder
        return made[key]

    return make


@pytest.fixture(scope='session')
def tiny_checkpoint(checkpoint_factory):
    return checkpoint_factory()


@pytest.fixture
def hub_cache(tmp_path, tiny_checkpoint):
    """A Hugging Face cache (cache_dir) holding ai-forever/ruclip-vit-base-patch32-224 at one commit,
    laid out as huggingface_hub writes it: blobs, snapshots/<commit>/<file>, refs/main."""
    commit = 'a' * 40
    repo = tmp_path / 'models--ai-forever--ruclip-vit-base-patch32-224'
    snapshot = repo / 'snapshots' / commit
    snapshot.mkdir(parents=True)
    (repo / 'blobs').mkdir()
    for name in ('config.json', 'bpe.model', 'pytorch_model.bin'):
        blob = repo / 'blobs' / name.replace('.', '_')
        shutil.copy(tiny_checkpoint / name, blob)
        (snapshot / name).symlink_to(blob)
    (repo / 'refs').mkdir()
    (repo / 'refs' / 'main').write_text(commit)
    return tmp_path


@pytest.fixture
def hub_with_all_models(monkeypatch, checkpoint_factory, tmp_path):
    """The Hub stand-in serving two tiny models under their real repo names; the default cache is
    a fresh folder, so ruclip.load('ruclip-vit-base-patch32-384') downloads from the stand-in."""
    import huggingface_hub.constants
    import ruclip
    with FakeHub() as hub:
        for name in ('ruclip-vit-base-patch32-384', 'ruclip-vit-base-patch16-224'):
            hub.add_folder(ruclip.MODELS[name]['repo_id'], checkpoint_factory(name))
        point_hub_client_at(monkeypatch, hub.url)
        monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(tmp_path / 'hf-cache'))
        yield hub


@pytest.fixture(scope='session')
def tiny_config(tiny_checkpoint):
    return json.loads((tiny_checkpoint / 'config.json').read_text())


OPENVINO_CACHE_ENV = 'RUCLIP_OPENVINO_CACHE'
def pytest_configure(config):
    """One cache of compiled OpenVINO models for the session, set before any test module is imported
    (some copy os.environ for their child processes then): the command line's default backend builds
    each tiny checkpoint's entries once, never in the user's ~/.cache."""
    config._ruclip_previous_cache = os.environ.get(OPENVINO_CACHE_ENV)
    os.environ[OPENVINO_CACHE_ENV] = tempfile.mkdtemp(prefix='ruclip-tests-openvino-')


def pytest_unconfigure(config):
    shutil.rmtree(os.environ.pop(OPENVINO_CACHE_ENV), ignore_errors=True)
    if getattr(config, '_ruclip_previous_cache', None) is not None:
        os.environ[OPENVINO_CACHE_ENV] = config._ruclip_previous_cache


@pytest.fixture(scope='session')
def openvino_cache():
    return Path(os.environ[OPENVINO_CACHE_ENV])


@pytest.fixture(autouse=True)
def _openvino_cache(monkeypatch, openvino_cache):
    monkeypatch.setenv(OPENVINO_CACHE_ENV, str(openvino_cache))  # a test may have changed it


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
