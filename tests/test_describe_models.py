"""describe(): a checkpoint folder is read through CLIPConfig, and is cached only with its weights."""
import json
import shutil

import pytest

from ruclip.pretrained import describe


@pytest.fixture
def folder(tmp_path, tiny_checkpoint):
    copy = tmp_path / 'copy'
    shutil.copytree(tiny_checkpoint, copy)
    return copy


def test_folder_with_weights_is_described(folder):
    info = describe(str(folder))
    assert (info.vit, info.patch_size, info.image_size, info.cached) == ('ViT/32, width 64', 32, 224, True)
    assert info.size_bytes == sum(path.stat().st_size for path in folder.iterdir())


def test_folder_without_weights_is_not_cached(folder):
    (folder / 'pytorch_model.bin').unlink()
    info = describe(str(folder))
    assert (info.cached, info.size_bytes, info.folder) == (False, None, None)


@pytest.mark.parametrize('change, message', [
    (lambda config: '{"embed_dim": 24,', r'config.json is not valid JSON'),
    (lambda config: '[1, 2]', r'config.json must hold a JSON object, got list'),
    (lambda config: json.dumps({k: v for k, v in config.items() if k != 'vision_patch_size'}),
     r"config.json is missing keys \['vision_patch_size'\]"),
    (lambda config: json.dumps(dict(config, vision_width=[64])), r'config vision_width must be a positive integer'),
], ids=['bad-json', 'list', 'missing-key', 'width-list'])
def test_bad_config_is_named_as_load_names_it(folder, tiny_config, change, message):
    (folder / 'config.json').write_text(change(tiny_config))
    with pytest.raises(ValueError, match=message):
        describe(str(folder))
