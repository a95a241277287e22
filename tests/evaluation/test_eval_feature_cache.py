"""The evaluation feature cache trusts a file only when it reads whole and records this model and split."""
import logging
import shutil

import pytest
import torch

import ruclip
from helpers.eval_data import write_image_folder
from ruclip.evaluation import features, load_split


@pytest.fixture
def setup(tiny_checkpoint, checkpoint_factory, tmp_path):
    """(predictor, another model's predictor, split, cache folder)."""
    write_image_folder(tmp_path / 'data', 2)
    made = [ruclip.Predictor(*ruclip.load(str(folder)), quiet=True, num_workers=0)
            for folder in (tiny_checkpoint, checkpoint_factory(seed=1))]
    return made[0], made[1], load_split('imagefolder', tmp_path / 'data'), tmp_path / 'cache'


def counting(predictor, monkeypatch):
    calls = []
    compute = predictor.get_image_latents
    monkeypatch.setattr(predictor, 'get_image_latents', lambda *a, **k: calls.append(1) or compute(*a, **k))
    return calls


@pytest.mark.parametrize('damage', ['truncated', 'flipped', 'empty'])
def test_a_damaged_cache_file_is_named_recomputed_and_rewritten(setup, monkeypatch, caplog, damage):
    predictor, _, split, cache = setup
    first = features.image_features(predictor, split, cache)
    (path,) = cache.iterdir()
    data = bytearray(path.read_bytes())
    if damage == 'truncated':
        data = data[:len(data) // 2]
    elif damage == 'flipped':
        for offset in range(len(data) // 3, len(data) // 3 + 16):  # inside the latents' bytes
            data[offset] ^= 0x5A
    else:
        data = b''
    path.write_bytes(bytes(data))
    calls = counting(predictor, monkeypatch)
    with caplog.at_level(logging.WARNING, logger='ruclip'):
        again = features.image_features(predictor, split, cache)
    assert calls == [1] and torch.equal(again, first)
    assert any(str(path) in record.getMessage() for record in caplog.records), caplog.text
    assert sorted(cache.iterdir()) == [path]  # rewritten in place, no temporary left
    assert torch.equal(features.image_features(predictor, split, cache), first) and calls == [1]


def test_another_models_file_under_this_name_is_not_read(setup, monkeypatch, caplog):
    predictor, other, split, cache = setup
    features.image_features(other, split, cache)
    (theirs,) = cache.iterdir()
    ours = cache / theirs.name.replace(features.cache_key(other, split), features.cache_key(predictor, split))
    shutil.move(theirs, ours)
    calls = counting(predictor, monkeypatch)
    with caplog.at_level(logging.WARNING, logger='ruclip'):
        latents = features.image_features(predictor, split, cache)
    assert calls == [1] and torch.allclose(latents, predictor.get_image_latents(split.images).float(), atol=1e-6)
    assert f'{ours}: it records another model' in caplog.text
