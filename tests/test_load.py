"""ruclip.load: the Hub (a local stand-in), its cache, offline mode, local folders, and every bad input."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ruclip
from helpers.checkpoints import TINY_ARCHITECTURES, write_checkpoint
from helpers.fake_hub import FakeHub, point_hub_client_at

REPO = 'ai-forever/ruclip-vit-base-patch32-224'
NAME = 'ruclip-vit-base-patch32-224'


@pytest.fixture
def hub(monkeypatch, tiny_checkpoint):
    with FakeHub() as hub:
        hub.add_folder(REPO, tiny_checkpoint)
        point_hub_client_at(monkeypatch, hub.url)
        yield hub


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_models_are_the_six_hub_repos():
    assert sorted(ruclip.MODELS) == sorted(
        f'ruclip-vit-{arch}' for arch in ['base-patch32-224', 'base-patch16-224', 'large-patch14-224',
                                          'base-patch32-384', 'large-patch14-336', 'base-patch16-384'])
    for name, entry in ruclip.MODELS.items():
        assert entry['repo_id'] == f'ai-forever/{name}'
        assert sorted(entry['filenames']) == ['bpe.model', 'config.json', 'pytorch_model.bin']


def test_download_into_cache_dir_then_offline_without_requests(hub, tmp_path, tiny_checkpoint):
    clip, processor = ruclip.load(NAME, cache_dir=tmp_path)
    assert not clip.training
    assert isinstance(processor, ruclip.RuCLIPProcessor)
    assert same_weights(clip, ruclip.CLIP.from_pretrained(tiny_checkpoint))
    assert sorted(p for _, p, _ in hub.file_requests() if p.endswith('pytorch_model.bin'))
    snapshot = tmp_path / f'models--{REPO.replace("/", "--")}' / 'snapshots'
    assert {p.name for p in next(snapshot.iterdir()).iterdir()} == {'config.json', 'bpe.model', 'pytorch_model.bin'}

    hub.requests.clear()
    clip_again, _ = ruclip.load(NAME, cache_dir=tmp_path, local_files_only=True)
    assert hub.requests == []
    assert same_weights(clip, clip_again)


def test_token_and_its_old_name_reach_the_hub(hub, tmp_path):
    ruclip.load(NAME, cache_dir=tmp_path / 'a', use_auth_token='old-style')
    assert {auth for _, _, auth in hub.file_requests()} == {'Bearer old-style'}
    hub.requests.clear()
    ruclip.load(NAME, cache_dir=tmp_path / 'b', token='new-style', use_auth_token='ignored')
    assert {auth for _, _, auth in hub.file_requests()} == {'Bearer new-style'}


def test_revision_selects_other_weights(hub, tmp_path, checkpoint_factory):
    hub.add_folder(REPO, checkpoint_factory(seed=1), revision='v2')
    main, _ = ruclip.load(NAME, cache_dir=tmp_path)
    v2, _ = ruclip.load(NAME, cache_dir=tmp_path, revision='v2')
    assert same_weights(v2, ruclip.CLIP.from_pretrained(checkpoint_factory(seed=1)))
    assert not same_weights(main, v2)


def test_hf_hub_offline_env_loads_from_default_cache_without_requests(hub, tmp_path):
    env = dict(os.environ, HF_HOME=str(tmp_path / 'hf'), HF_ENDPOINT=hub.url)
    env.pop('HF_HUB_OFFLINE', None)
    script = (f'import ruclip; clip, _ = ruclip.load({NAME!r}); '
              f'print(sum(p.numel() for p in clip.parameters()))')
    online = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True, text=True)
    assert online.returncode == 0, online.stderr
    assert (tmp_path / 'hf' / 'hub' / f'models--{REPO.replace("/", "--")}').is_dir()

    hub.requests.clear()
    offline = subprocess.run([sys.executable, '-c', script], env=dict(env, HF_HUB_OFFLINE='1'),
                             capture_output=True, text=True)
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout == online.stdout
    assert hub.requests == []


def test_prepared_cache_loads_offline(hub_cache, tiny_checkpoint):
    clip, _ = ruclip.load(NAME, cache_dir=hub_cache, local_files_only=True)
    assert same_weights(clip, ruclip.CLIP.from_pretrained(tiny_checkpoint))


def test_cache_dir_in_the_originals_layout_is_used_without_a_download(hub, tmp_path, checkpoint_factory):
    original_cache = tmp_path / 'ruclip'
    shutil.copytree(checkpoint_factory(seed=2), original_cache / NAME)  # as ruclip 0.0.2 left it
    clip, processor = ruclip.load(NAME, cache_dir=original_cache)
    assert hub.requests == []
    assert same_weights(clip, ruclip.CLIP.from_pretrained(checkpoint_factory(seed=2)))
    clip, _ = ruclip.load(NAME, cache_dir=str(original_cache), local_files_only=True)
    assert same_weights(clip, ruclip.CLIP.from_pretrained(checkpoint_factory(seed=2)))


def test_cache_dir_with_part_of_the_originals_layout_downloads(hub, tmp_path, tiny_checkpoint):
    (tmp_path / NAME).mkdir()
    shutil.copy(tiny_checkpoint / 'config.json', tmp_path / NAME / 'config.json')
    clip, _ = ruclip.load(NAME, cache_dir=tmp_path)
    assert any(p.endswith('pytorch_model.bin') for _, p, _ in hub.file_requests())


def test_offline_and_not_cached_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'ai-forever/ruclip-vit-base-patch16-224/.*local_files_only'):
        ruclip.load('ruclip-vit-base-patch16-224', cache_dir=tmp_path, local_files_only=True)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"Unknown model 'ruclip-vit-huge'.*ruclip-vit-base-patch32-224"):
        ruclip.load('ruclip-vit-huge')
    with pytest.raises(TypeError, match='model name must be a str'):
        ruclip.load(42)
    with pytest.raises(FileNotFoundError, match='no such checkpoint folder'):
        ruclip.load('./no/such/folder')


def test_local_folder_and_device_and_dtype(tiny_checkpoint):
    clip, processor = ruclip.load(str(tiny_checkpoint), device='cpu', dtype=torch.bfloat16)
    assert clip.dtype == torch.bfloat16 and clip.device.type == 'cpu' and not clip.training
    clip32, _ = ruclip.load(tiny_checkpoint)
    assert clip32.dtype == torch.float32


def test_load_reads_config_json_once(tiny_checkpoint, monkeypatch):
    from ruclip.config import CLIPConfig
    reads, from_file = [], CLIPConfig.from_file.__func__
    monkeypatch.setattr(CLIPConfig, 'from_file',
                        classmethod(lambda cls, path: reads.append(path) or from_file(cls, path)))
    clip, processor = ruclip.load(str(tiny_checkpoint))
    assert len(reads) == 1
    assert (processor.image_size, processor.text_seq_length) == (224, clip.context_length)


@pytest.mark.parametrize('device', ['CPU', 'gpu', 'cuda:x', 1.5])
def test_unknown_device_is_named_before_anything_is_read(folder_copy, tmp_path, device):
    (folder_copy / 'pytorch_model.bin').write_bytes(b'')  # reading it would be another error
    with pytest.raises(ValueError, match=rf"device={device!r} is not a device torch knows; pass 'cpu', 'cuda'"):
        ruclip.load(str(folder_copy), device=device)
    with pytest.raises(ValueError, match=rf"device={device!r} is not a device"):  # before any download
        ruclip.load(NAME, device=device, cache_dir=tmp_path, local_files_only=True)


def test_cuda_without_a_gpu_is_named_before_anything_is_read(folder_copy, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    (folder_copy / 'pytorch_model.bin').write_bytes(b'')
    with pytest.raises(ValueError, match=r"device='cuda:1' but this torch sees no CUDA GPU"):
        ruclip.load(str(folder_copy), device='cuda:1')


@pytest.mark.skipif(torch.backends.mps.is_available(), reason='this machine has an mps device')
def test_a_device_torch_knows_but_cannot_use_is_named_before_anything_is_read(folder_copy):
    (folder_copy / 'pytorch_model.bin').write_bytes(b'')
    with pytest.raises(ValueError, match=r"device='mps' cannot be used here: "):
        ruclip.load(str(folder_copy), device='mps')


@pytest.mark.parametrize('device', ['cuda', 'cpu'])
def test_a_device_given_as_dtype_says_so(tiny_checkpoint, device):
    with pytest.raises(ValueError, match=rf"dtype='{device}' looks like a device: pass device='{device}'"):
        ruclip.CLIP.from_pretrained(tiny_checkpoint, device)


def test_fp16_checkpoint_loads_as_fp32_by_default(checkpoint_factory):
    clip = ruclip.CLIP.from_pretrained(checkpoint_factory(dtype=torch.float16))
    assert all(p.dtype == torch.float32 for p in clip.parameters())


def test_safetensors_is_preferred_over_bin(tmp_path, bpe_model, tiny_checkpoint):
    folder = write_checkpoint(tmp_path / 'st', TINY_ARCHITECTURES[NAME], bpe_model, seed=3, weights='safetensors')
    shutil.copy(tiny_checkpoint / 'pytorch_model.bin', folder / 'pytorch_model.bin')  # seed 0 weights
    clip, _ = ruclip.load(str(folder))
    from safetensors.torch import load_file
    expected = load_file(folder / 'model.safetensors')
    assert all(torch.equal(clip.state_dict()[k], v) for k, v in expected.items())


@pytest.fixture
def folder_copy(tmp_path, tiny_checkpoint):
    folder = tmp_path / 'copy'
    shutil.copytree(tiny_checkpoint, folder)
    return folder


@pytest.mark.parametrize('missing, message', [
    ('config.json', 'has no config.json'),
    ('bpe.model', 'has no bpe.model'),
    ('pytorch_model.bin', 'no weights in .*pytorch_model.bin'),
])
def test_missing_file_is_named(folder_copy, missing, message):
    (folder_copy / missing).unlink()
    with pytest.raises(FileNotFoundError, match=message):
        ruclip.load(str(folder_copy))


@pytest.mark.parametrize('filename, content, message', [
    ('pytorch_model.bin', b'not a checkpoint at all', r'pytorch_model.bin is corrupt'),
    ('pytorch_model.bin', b'junk', r'pytorch_model.bin is corrupt'),
    ('pytorch_model.bin', b'', r'pytorch_model.bin is corrupt'),
    ('config.json', b'{"embed_dim": 24,', r'config.json is not valid JSON'),
    ('config.json', b'[1, 2]', r'config.json must hold a JSON object'),
    ('config.json', b'{"embed_dim": 24}', r"config.json is missing keys \['context_length'"),
    ('bpe.model', b'12 x\n', r'bpe.model'),
])
def test_corrupt_file_is_named(folder_copy, filename, content, message):
    (folder_copy / filename).write_bytes(content)
    with pytest.raises(ValueError, match=message):
        ruclip.load(str(folder_copy))


LFS_POINTER = b'version https://git-lfs.github.com/spec/v1\noid sha256:4d7a21\nsize 605163785\n'


@pytest.mark.parametrize('weights', ['pytorch_model.bin', 'model.safetensors'])
@pytest.mark.parametrize('content, reason', [
    (LFS_POINTER, r'it is a Git LFS pointer, not the weights: fetch the real file with `git lfs pull`'),
    (b'', r'the file is empty \(0 bytes\)'),
    (b'<!DOCTYPE html>\n<html><body>502 Bad Gateway</body></html>\n', r'it is an HTML page of 58 bytes'),
    ('ошибка: нет файла\n'.encode(), r'it is a text file of 32 bytes'),
], ids=['lfs-pointer', 'empty', 'html', 'text'])
def test_weights_file_that_is_not_weights_says_what_it_is(folder_copy, weights, content, reason):
    (folder_copy / 'pytorch_model.bin').unlink()
    (folder_copy / weights).write_bytes(content)
    with pytest.raises(ValueError, match=rf'{weights} is corrupt or not a .*: {reason}'):
        ruclip.load(str(folder_copy))


def test_unreadable_pickle_gives_torchs_reason_not_its_request_for_an_issue(folder_copy):
    (folder_copy / 'pytorch_model.bin').write_bytes(bytes([16, 0, 255, 254, 7]))
    with pytest.raises(ValueError, match=r'pytorch_model.bin is corrupt or not a PyTorch checkpoint: '
                                         r'Unsupported operand 16$'):
        ruclip.load(str(folder_copy))


def test_truncated_weights_are_named(folder_copy):
    path = folder_copy / 'pytorch_model.bin'
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ValueError, match='pytorch_model.bin is corrupt'):
        ruclip.load(str(folder_copy))


def test_weights_that_do_not_match_the_config_are_explained(folder_copy):
    config = json.loads((folder_copy / 'config.json').read_text())
    config['transformer_width'] = 64
    (folder_copy / 'config.json').write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r'checkpoint does not match config.json: shape mismatches'):
        ruclip.load(str(folder_copy))


def test_bad_config_value_is_explained(folder_copy):
    config = json.loads((folder_copy / 'config.json').read_text())
    config['vision_patch_size'] = 0
    (folder_copy / 'config.json').write_text(json.dumps(config))
    with pytest.raises(ValueError, match='vision_patch_size must be a positive integer, got 0'):
        ruclip.load(str(folder_copy))


class _Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned',))


def test_pickled_code_is_refused(folder_copy):
    torch.save({'payload': _Evil()}, folder_copy / 'pytorch_model.bin')
    with pytest.raises(ValueError, match='could not be loaded safely'):
        ruclip.load(str(folder_copy))


def test_saving_over_the_loaded_weights_file_works(folder_copy):
    """A model that mapped its file died of SIGBUS here (torch.save truncates the file it reads from);
    run in a subprocess so that such a crash fails this test only."""
    script = f'''
import torch, ruclip
clip = ruclip.CLIP.from_pretrained({str(folder_copy)!r})
torch.save(clip.state_dict(), {str(folder_copy / 'pytorch_model.bin')!r})
again = ruclip.CLIP.from_pretrained({str(folder_copy)!r}).state_dict()
print(all(torch.equal(v, again[k]) for k, v in clip.state_dict().items()))
'''
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))  # this checkout's ruclip
    run = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True, text=True)
    assert run.returncode == 0, (run.returncode, run.stderr)
    assert run.stdout.split() == ['True']


@pytest.mark.parametrize('weights', ['bin', 'safetensors'])
def test_rewriting_the_weights_file_leaves_the_loaded_model_alone(tmp_path, bpe_model, weights):
    architecture = TINY_ARCHITECTURES[NAME]
    folder = write_checkpoint(tmp_path / 'loaded', architecture, bpe_model, seed=0, weights=weights)
    other = write_checkpoint(tmp_path / 'other', architecture, bpe_model, seed=1, weights=weights)
    filename = {'bin': 'pytorch_model.bin', 'safetensors': 'model.safetensors'}[weights]
    clip = ruclip.CLIP.from_pretrained(folder)
    loaded = {k: v.clone() for k, v in clip.state_dict().items()}
    other_bytes = (other / filename).read_bytes()
    assert len(other_bytes) == (folder / filename).stat().st_size  # same size: no truncation, no SIGBUS
    with open(folder / filename, 'r+b') as file:  # in place, as a second save may
        file.write(other_bytes)
    assert same_weights(ruclip.CLIP.from_pretrained(folder), ruclip.CLIP.from_pretrained(other))
    assert all(torch.equal(v, loaded[k]) for k, v in clip.state_dict().items())


@pytest.mark.parametrize('weights', ['bin', 'safetensors'])
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_reduced_precision_load_equals_fp32_load_then_cast(checkpoint_factory, weights, dtype):
    folder = checkpoint_factory(weights=weights)
    expected = ruclip.CLIP.from_pretrained(folder).to(dtype).state_dict()
    got = ruclip.CLIP.from_pretrained(folder, dtype=dtype).state_dict()
    assert got.keys() == expected.keys()
    assert all(got[k].dtype == dtype and torch.equal(got[k], expected[k]) for k in expected)


@pytest.mark.parametrize('zipped', [True, False], ids=['mapped', 'legacy-unmapped'])
def test_conversion_keeps_tensors_that_share_storage(tmp_path, zipped):
    from ruclip._weights import converted, read_state_dict
    big = torch.randn(1024, 1024)
    torch.save({'a': big, 'tied': big, 'half': big[512:], 'steps': torch.arange(5)}, tmp_path / 'pytorch_model.bin',
               _use_new_zipfile_serialization=zipped)
    result = converted(read_state_dict(tmp_path), torch.bfloat16, 'cpu')
    for name, expected in [('a', big), ('tied', big), ('half', big[512:])]:
        assert torch.equal(result[name], expected.to(torch.bfloat16))
    assert torch.equal(result['steps'], torch.arange(5))


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads /proc/self/maps')
def test_conversion_copies_mapped_tensors_only(tmp_path):
    from ruclip._weights import converted, read_state_dict
    in_heap = torch.randn(64, 64)
    assert converted({'w': in_heap}, torch.float32, 'cpu')['w'] is in_heap
    torch.save({'w': in_heap}, tmp_path / 'pytorch_model.bin')
    mapped = read_state_dict(tmp_path)['w']
    copy = converted({'w': mapped}, torch.float32, 'cpu')['w']
    assert copy.data_ptr() != mapped.data_ptr() and torch.equal(copy, in_heap)


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads /proc/self/status')
@pytest.mark.parametrize('dtype, most', [('float32', 1.3), ('bfloat16', 0.8)])
def test_load_holds_one_copy_of_the_weights_not_the_file_beside_it(tmp_path, bpe_model, tiny_checkpoint,
                                                                   dtype, most):
    """The peak is the model's own weights (fp32: the file's size, bf16: half) plus a little, not
    the file's pages as well."""
    wide = dict(TINY_ARCHITECTURES[NAME], vision_width=1024, vision_layers=4)  # 54M parameters
    folder = write_checkpoint(tmp_path / 'wide', wide, bpe_model)
    file_mb = (folder / 'pytorch_model.bin').stat().st_size / 2 ** 20
    script = f'''
import torch, ruclip
def status_mb(key):
    line = next(line for line in open('/proc/self/status') if line.startswith(key + ':'))
    return int(line.split()[1]) / 1024
ruclip.CLIP.from_pretrained({str(tiny_checkpoint)!r})  # one-time imports out of the way
before = status_mb('VmRSS')
clip = ruclip.CLIP.from_pretrained({str(folder)!r}, dtype=torch.{dtype})
print(status_mb('VmHWM') - before)
'''
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))  # this checkout's ruclip
    run = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert float(run.stdout) < most * file_mb, (float(run.stdout), file_mb)


def test_load_builds_the_network_without_torch_meta_kernels(tiny_checkpoint):
    """Arithmetic on the meta device imports torch's sympy-based meta kernels (~150 MB, ~1 s);
    a load builds on meta without any, so the first load does not pay for them."""
    script = f'''
import sys, torch, ruclip
before = 'sympy' in sys.modules
ruclip.load({str(tiny_checkpoint)!r}, dtype=torch.bfloat16)
print(before, 'sympy' in sys.modules)
'''
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))  # this checkout's ruclip
    run = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    before, after = run.stdout.split()
    assert before == 'True' or after == 'False', 'loading a checkpoint imported sympy'
