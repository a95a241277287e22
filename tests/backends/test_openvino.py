"""backend='openvino': the same latents and labels as PyTorch, a cache entry reused on the next load,
and clear errors for a bad backend, a missing package, or a precision the CPU cannot run."""
import importlib
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import ruclip
from helpers.images import rgb_image

pytest.importorskip('openvino')
from ruclip.backends import _int8, openvino as ov_backend  # noqa: E402

ATOL = 1e-4  # fp32 latents, OpenVINO against PyTorch
TEXTS = ['кошка', 'собака на улице', 'красный дом у реки', 'фото с морем и небом', 'дом ' * 100]
LABELS = ['кошка', 'собака', 'дом', 'море']


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp('openvino-cache')


@pytest.fixture(autouse=True)
def _cache_env(monkeypatch, cache):
    monkeypatch.setenv(ov_backend.CACHE_ENV, str(cache))


@pytest.fixture(scope='module')
def images():
    return [rgb_image(320 + 17 * i, 240, seed=i) for i in range(5)]


@pytest.fixture(scope='module')
def reference(tiny_checkpoint):
    return ruclip.load(tiny_checkpoint)


@pytest.fixture(scope='module')
def fp32(tiny_checkpoint, cache):
    with pytest.MonkeyPatch.context() as patch:  # module scope: before the autouse fixture runs
        patch.setenv(ov_backend.CACHE_ENV, str(cache))
        return ruclip.load(tiny_checkpoint, backend='openvino')


@pytest.fixture(scope='module')
def int8(tiny_checkpoint, cache):
    with pytest.MonkeyPatch.context() as patch:  # a smaller calibration set: the model is tiny
        patch.setenv(ov_backend.CACHE_ENV, str(cache))
        patch.setattr(_int8, 'CALIBRATION_IMAGES', 8)
        patch.setattr(_int8, 'CHECK_IMAGES', 8)
        patch.setattr(_int8, 'NOUNS', _int8.NOUNS[:8])  # 48 prompts, a batch for each half
        return ruclip.load(tiny_checkpoint, backend='openvino', dtype='int8')


def latents(model, processor, images):
    batch = processor(text=TEXTS, images=images)
    return model.encode_image(batch['pixel_values']), model.encode_text(batch['input_ids'])


def test_fp32_latents_match_pytorch(fp32, reference, images):
    (model, processor), (clip, _) = fp32, reference
    assert model.precision == 'fp32' and model.dtype == torch.float32
    with torch.inference_mode():
        expected = latents(clip, processor, images)
    for got, want in zip(latents(model, processor, images), expected):
        assert got.dtype == torch.float32 and got.shape == want.shape
        torch.testing.assert_close(got, want, atol=ATOL, rtol=0)
    for batch in (1, 3):  # dynamic batch and text length
        ids = processor(text=TEXTS[:batch])['input_ids']
        torch.testing.assert_close(model.encode_text(ids), clip.encode_text(ids), atol=ATOL, rtol=0)


def test_predictor_classify_and_rank_give_pytorch_labels(fp32, reference, images):
    (model, processor), (clip, _) = fp32, reference
    ours, theirs = ruclip.Predictor(model, processor, quiet=True), ruclip.Predictor(clip, processor, quiet=True)
    assert ours.run(images, ours.get_text_latents(LABELS)) == theirs.run(images, theirs.get_text_latents(LABELS))
    got, want = ruclip.classify(ours, images, LABELS, k=2), ruclip.classify(theirs, images, LABELS, k=2)
    assert got.labels == want.labels
    torch.testing.assert_close(got.scores, want.scores, atol=1e-4, rtol=0)
    got, want = ruclip.rank(ours, images, LABELS, k=3), ruclip.rank(theirs, images, LABELS, k=3)
    assert torch.equal(got.texts_per_image.indices, want.texts_per_image.indices)
    with pytest.raises(ValueError, match='runs on the CPU'):
        model.to('cuda')


def test_to_takes_the_cpu_and_float32_in_any_of_nn_modules_forms_and_refuses_the_rest(fp32):
    model = fp32[0]
    for args, kwargs in [(('cpu',), {}), ((torch.float32,), {}), (('cpu', torch.float32), {}),
                         ((torch.zeros(1),), {}), ((), dict(device='cpu', dtype=torch.float32)),
                         ((torch.device('cpu'),), dict(non_blocking=True)), ((), dict(memory_format=torch.preserve_format))]:
        assert model.to(*args, **kwargs) is model
    for args, kwargs, message in [(('meta',), {}, 'runs on the CPU'), ((), dict(device='meta'), 'runs on the CPU'),
                                  ((torch.bfloat16,), {}, 'float32'), ((), dict(dtype=torch.float16), 'float32'),
                                  ((torch.zeros(1, dtype=torch.float64),), {}, 'float32')]:
        with pytest.raises(ValueError, match=message):
            model.to(*args, **kwargs)


def test_second_load_imports_the_cached_entry_without_building(fp32, tiny_checkpoint, cache, monkeypatch):
    entry = fp32[0].cache_folder
    assert os.path.dirname(entry) == str(cache)
    names = sorted(os.listdir(entry))
    assert names == sorted([ov_backend.IMAGE_BLOB, ov_backend.TEXT_BLOB, ov_backend.META])  # no partial files
    assert not [name for name in os.listdir(cache) if name.startswith('.')]
    stamps = {name: os.stat(os.path.join(entry, name)).st_mtime_ns for name in names}

    def no_build(*args):
        raise AssertionError('the cache entry was rebuilt')

    monkeypatch.setattr(ov_backend, '_build', no_build)
    monkeypatch.setattr(ruclip.model.CLIP, 'from_pretrained', no_build)  # a hit reads no weights
    model, _ = ruclip.load(tiny_checkpoint, backend='openvino', dtype=torch.float32)
    assert model.cache_folder == entry
    assert {name: os.stat(os.path.join(entry, name)).st_mtime_ns for name in os.listdir(entry)} == stamps


def test_the_key_follows_config_weights_and_precision(tiny_checkpoint, checkpoint_factory, tmp_path):
    import openvino
    core = openvino.Core()

    def key(folder, precision='fp32'):
        return ov_backend.cache_key(str(folder), precision, openvino, core, str(tmp_path / 'cache'))[0]

    assert key(tiny_checkpoint) == key(tiny_checkpoint)
    assert len(os.listdir(tmp_path / 'cache' / 'digests')) == 1  # the weights were hashed once
    assert key(tiny_checkpoint) != key(tiny_checkpoint, 'int8')
    assert key(tiny_checkpoint) != key(checkpoint_factory(seed=1))  # other weights
    assert key(tiny_checkpoint) != key(checkpoint_factory(with_mean_std=False))  # another config.json
    copy = tmp_path / 'copy'
    shutil.copytree(tiny_checkpoint, copy)
    assert key(copy) == key(tiny_checkpoint)  # the same files elsewhere: the same entry
    other = checkpoint_factory(seed=2) / 'pytorch_model.bin'
    assert os.path.getsize(other) == os.path.getsize(copy / 'pytorch_model.bin')
    shutil.copyfile(other, copy / 'pytorch_model.bin')  # rewritten in place, same size: a new mtime
    assert key(copy) == key(checkpoint_factory(seed=2)) != key(tiny_checkpoint)


def test_int8_is_close_to_fp32_and_records_its_cosine(int8, reference, images):
    """int8 stays an approximation of fp32; how close depends on the CPU's int8 instructions (without
    VNNI, oneDNN's AVX2 kernels saturate: 0.94 on this tiny model where VNNI gives > 0.98), so the
    cosine the build measured must be what other images see when it admits int8 as a default."""
    (model, processor), (clip, _) = int8, reference
    assert model.precision == 'int8' and 0.9 < model.int8_cosine <= 1
    with torch.inference_mode():
        expected = latents(clip, processor, images)
    for got, want in zip(latents(model, processor, images), expected):
        cosine = torch.nn.functional.cosine_similarity(got, want).min()
        assert cosine > 0.9
        if model.int8_cosine >= _int8.MIN_COSINE:
            assert cosine > 0.98


@pytest.mark.parametrize('dtype', [None, 'auto'])
def test_auto_takes_int8_when_it_passes_the_gate(int8, tiny_checkpoint, monkeypatch, dtype):
    monkeypatch.setattr(_int8, 'MIN_COSINE', 0.0)
    monkeypatch.setattr(ov_backend, '_build', None)  # cached by now
    model, _ = ruclip.load(tiny_checkpoint, backend='auto', dtype=dtype)
    assert model.precision == 'int8' and model.cache_folder == int8[0].cache_folder


def test_auto_under_the_gate_takes_the_fallback_without_importing_int8(int8, fp32, tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(_int8, 'MIN_COSINE', 1.01)
    monkeypatch.setattr(ov_backend, '_build', None)
    monkeypatch.setattr(ov_backend, 'auto_fallback', lambda core: 'fp32')  # bf16 on a CPU with bf16 units
    imported, real_import = [], ov_backend._import
    monkeypatch.setattr(ov_backend, '_import', lambda core, entry, precision: imported.append(precision) or
                        real_import(core, entry, precision))
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no int8 warning either: int8 was not asked for
        model, _ = ruclip.load(tiny_checkpoint, backend='openvino', dtype='auto')
    assert model.precision == 'fp32' and imported == ['fp32']


@pytest.mark.parametrize('capabilities, fallback', [(['FP32', 'INT8'], 'fp32'), (['BF16', 'FP32', 'INT8'], 'bf16')])
def test_the_fallback_is_bf16_only_where_the_cpu_has_bf16_units(capabilities, fallback):
    class Core:
        def get_property(self, device, name):
            return capabilities

    assert ov_backend.auto_fallback(Core()) == fallback


CACHED_LOAD = """
import gc, sys, torch, ruclip, ruclip.model
import ruclip.backends._int8 as q
q.MIN_COSINE = 0.0
real = ruclip.model.CLIP.from_pretrained
def no_weights(*args, **kwargs):
    raise AssertionError('a cached load read the weights')
ruclip.model.CLIP.from_pretrained = no_weights
model, processor = ruclip.load(sys.argv[1], backend='auto', dtype='auto')
assert model.precision == 'int8', model.precision
assert 'nncf' not in sys.modules, 'a cached load imported nncf'
gc.collect()  # what the compiled models read lies in the mapped blobs, which the model must keep
pixels = torch.rand(2, 3, 224, 224)
latents = model.encode_image(pixels)
ruclip.model.CLIP.from_pretrained = real
with torch.inference_mode():
    expected = ruclip.load(sys.argv[1])[0].encode_image(pixels)
cosine = torch.nn.functional.cosine_similarity(latents, expected).min()
assert cosine > 0.9, cosine
"""


def test_a_cached_load_reads_no_weights_imports_no_nncf_and_keeps_its_maps(int8, tiny_checkpoint, cache):
    """In a fresh process: this one imported nncf for the int8 build."""
    env = dict(os.environ, **{ov_backend.CACHE_ENV: str(cache)})
    done = subprocess.run([sys.executable, '-c', CACHED_LOAD, str(tiny_checkpoint)], capture_output=True, text=True,
                          env=env, cwd=str(Path(__file__).resolve().parents[2]))
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize('name, damage', [(ov_backend.IMAGE_BLOB, b''), (ov_backend.IMAGE_BLOB, b'not a model' * 8),
                                          (ov_backend.IMAGE_BLOB, 'half'), (ov_backend.META, b'{}'),
                                          (ov_backend.META, b'{"precision": "fp32", "eos_id"')])
def test_a_damaged_entry_is_built_again(tiny_checkpoint, tmp_path, monkeypatch, reference, images, name, damage):
    monkeypatch.setenv(ov_backend.CACHE_ENV, str(tmp_path))
    entry = ruclip.load(tiny_checkpoint, backend='openvino')[0].cache_folder
    path = os.path.join(entry, name)
    with open(path, 'rb') as f:
        whole = f.read()
    with open(path + '.new', 'wb') as f:
        f.write(whole[:len(whole) // 2] if damage == 'half' else damage)
    os.replace(path + '.new', path)  # as a rebuild does: a mapped blob is never written in place
    model, processor = ruclip.load(tiny_checkpoint, backend='openvino')
    assert model.cache_folder == entry and os.path.getsize(path) == len(whole)
    assert sorted(os.listdir(tmp_path)) == ['digests', os.path.basename(entry)]  # no temporary folder left
    pixels = processor(images=images)['pixel_values']
    with torch.inference_mode():
        torch.testing.assert_close(model.encode_image(pixels), reference[0].encode_image(pixels), atol=ATOL, rtol=0)


def test_unknown_backend_lists_the_choices(tiny_checkpoint):
    with pytest.raises(ValueError, match=r"Unknown backend 'onnx'; choose one of \['torch', 'openvino', 'auto'\]"):
        ruclip.load(tiny_checkpoint, backend='onnx')


@pytest.mark.parametrize('backend, dtype, message', [
    ('torch', 'int8', "Unknown dtype 'int8' for backend='torch'.*int8 runs with backend='openvino'"),
    ('openvino', torch.float16, "takes dtype torch.float32, torch.bfloat16, 'int8' or 'auto', got torch.float16"),
])
def test_a_dtype_the_backend_cannot_run_is_refused(tiny_checkpoint, backend, dtype, message):
    with pytest.raises(ValueError, match=message):
        ruclip.load(tiny_checkpoint, backend=backend, dtype=dtype)


def test_bf16_is_refused_on_a_cpu_without_bf16_units():
    class CoreWithoutBf16:
        def get_property(self, device, name):
            return ['FP32', 'INT8'] if name == 'OPTIMIZATION_CAPABILITIES' else 'An AVX2 CPU'

    with pytest.raises(ValueError, match=r'bf16 needs a CPU with bf16 units.*An AVX2 CPU'):
        ov_backend.check_precision(CoreWithoutBf16(), 'bf16')


def test_missing_openvino_names_the_extra(tiny_checkpoint, monkeypatch):
    real_import = importlib.import_module

    def without_openvino(name, *args):
        if name.split('.')[0] == 'openvino':
            raise ImportError(f"No module named '{name}'", name=name)
        return real_import(name, *args)

    monkeypatch.setattr(importlib, 'import_module', without_openvino)
    with pytest.raises(ImportError, match=r"needs the 'openvino' package.*pip install 'ruclip\[openvino\]'"):
        ruclip.load(tiny_checkpoint, backend='openvino')


def test_docs_openvino_example_runs(hub_with_all_models, monkeypatch, tmp_path):
    from helpers.doc_blocks import DOCS, code_blocks
    from helpers.images import rgb_image as picture
    (block,) = code_blocks(DOCS / 'cpu.md', 'CPU runtime: OpenVINO (fp32, bf16, int8)')
    for name in ('a.jpg', 'b.jpg'):
        picture(64, 48).save(tmp_path / name)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(block, namespace)
    assert namespace['clip'].precision == 'fp32' and len(namespace['labels']) == 2
