"""ONNX export: both towers on onnxruntime give PyTorch's fp32 latents within 1e-4."""
import os

import numpy as np
import pytest
import torch

from ruclip import RuCLIPProcessor, load
from ruclip._outputs import EXPORT_RECORD
from ruclip.export.onnx import IMAGE_FILE, TEXT_FILE, OnnxCLIP, export_onnx
from helpers.images import SIZES, rgb_image
from helpers.texts import varied_texts

onnx = pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')

ATOL = 1e-4
LONG_TEXT = 'большой красный дом стоит на улице города ' * 20  # more than 75 tokens: all 77 positions


@pytest.fixture(scope='module')
def onnx_folder(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp('onnx')
    export_onnx(tiny_checkpoint, out)
    return out


@pytest.fixture(scope='module')
def runner(onnx_folder):
    return OnnxCLIP(onnx_folder)


@pytest.fixture(scope='module')
def loaded(tiny_checkpoint):
    return load(tiny_checkpoint)


def images_for(batch: int, seed: int = 0) -> list:
    return [rgb_image(*SIZES[k % len(SIZES)], seed=seed + k) for k in range(batch)]


def texts_for(batch: int) -> list:
    return (varied_texts(batch - 1, seed=batch) + [LONG_TEXT]) if batch > 1 else ['кошка']


@pytest.mark.parametrize('batch', [1, 3, 17])
def test_text_latents_match_pytorch(runner, loaded, batch):
    clip, processor = loaded
    input_ids = processor(text=texts_for(batch))['input_ids']
    with torch.inference_mode():
        expected = clip.encode_text(input_ids)
    got = runner.encode_text(input_ids)
    assert got.shape == expected.shape and got.dtype == torch.float32
    assert (got - expected).abs().max() < ATOL
    assert (runner.encode_text(input_ids.numpy(), normalize=True)
            - torch.nn.functional.normalize(expected, dim=-1)).abs().max() < ATOL


@pytest.mark.parametrize('batch', [1, 3, 17])
def test_image_latents_match_pytorch(runner, loaded, batch):
    clip, processor = loaded
    pixel_values = processor(images=images_for(batch, seed=batch))['pixel_values']
    with torch.inference_mode():
        expected = clip.encode_image(pixel_values)
    got = runner.encode_image(pixel_values)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() < ATOL


def test_text_graph_takes_any_length_up_to_context_length(runner, loaded):
    """Untrimmed, fully padded ids give the trimmed batch's latents: the length axis is dynamic."""
    clip, processor = loaded
    input_ids = processor(text=['кошка', 'собака бежит по улице'])['input_ids']
    full = runner.text_session.run(None, {'input_ids': input_ids.numpy()})[0]
    assert np.abs(full - runner.encode_text(input_ids).numpy()).max() < 1e-5


def test_graphs_have_dynamic_axes_and_opset_18(onnx_folder):
    dims = {}
    for name in (IMAGE_FILE, TEXT_FILE):
        graph = onnx.load(str(onnx_folder / name), load_external_data=False)
        onnx.checker.check_model(graph)
        assert {o.domain: o.version for o in graph.opset_import}[''] == 18
        (tensor,) = graph.graph.input
        dims[name] = [d.dim_param or d.dim_value for d in tensor.type.tensor_type.shape.dim]
    assert dims[IMAGE_FILE] == ['batch', 3, 224, 224]
    assert dims[TEXT_FILE] == ['batch', 'length']


def test_export_folder_serves_the_processor(onnx_folder, loaded):
    _, processor = loaded
    texts = varied_texts(20, seed=3)
    assert torch.equal(RuCLIPProcessor.from_pretrained(onnx_folder)(text=texts)['input_ids'],
                       processor(text=texts)['input_ids'])


def test_export_folder_keeps_the_image_normalisation(onnx_folder, tiny_checkpoint):
    """The checkpoint's own mean/std (write_checkpoint's with_mean_std), not OpenAI's defaults."""
    images = images_for(3, seed=11)
    source, exported = (RuCLIPProcessor.from_pretrained(folder) for folder in (tiny_checkpoint, onnx_folder))
    assert list(exported.mean) == list(source.mean) != [0.48145466, 0.4578275, 0.40821073]
    assert torch.equal(exported(images=images)['pixel_values'], source(images=images)['pixel_values'])


@pytest.mark.slow
def test_export_of_a_loaded_model_of_another_architecture(checkpoint_factory, tmp_path):
    clip, processor = load(checkpoint_factory('ruclip-vit-large-patch14-336', seed=1))
    paths = export_onnx(clip, tmp_path, opset=17)
    assert sorted(paths) == ['config', 'image', 'text'] and not (tmp_path / 'bpe.model').exists()
    runner = OnnxCLIP(tmp_path)
    inputs = processor(text=texts_for(3), images=images_for(3, seed=7))
    with torch.inference_mode():
        assert (runner.encode_image(inputs['pixel_values']) - clip.encode_image(inputs['pixel_values'])).abs().max() < ATOL
        assert (runner.encode_text(inputs['input_ids']) - clip.encode_text(inputs['input_ids'])).abs().max() < ATOL


@pytest.mark.slow
def test_fp16_export_runs_on_cpu_within_fp16_precision(loaded, tmp_path, onnx_folder):
    """Half-size files; latents within 1e-2 of fp32 (measured ~2e-3 on latents of magnitude ~3)."""
    clip, processor = loaded
    export_onnx(clip, tmp_path, dtype=torch.float16)
    assert clip.dtype == torch.float32  # the loaded model is left as it was
    size16, size32 = ((folder / IMAGE_FILE).stat().st_size for folder in (tmp_path, onnx_folder))
    assert size16 < 0.6 * size32
    runner = OnnxCLIP(tmp_path)
    inputs = processor(text=texts_for(5), images=images_for(5))
    with torch.inference_mode():
        for got, expected in ((runner.encode_image(inputs['pixel_values']), clip.encode_image(inputs['pixel_values'])),
                              (runner.encode_text(inputs['input_ids']), clip.encode_text(inputs['input_ids']))):
            assert got.dtype == torch.float32
            assert (got - expected).abs().max() < 1e-2
            assert torch.nn.functional.cosine_similarity(got, expected).min() > 0.9999


def test_runner_rejects_bad_inputs(runner):
    with pytest.raises(ValueError, match=r'shape \[batch, 3, 224, 224\]'):
        runner.encode_image(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match='row 1 has no eos token'):
        runner.encode_text(torch.tensor([[2, 3], [2, 5]]))
    with pytest.raises(ValueError, match='at most 77'):
        runner.encode_text(torch.full((1, 78), 3))
    with pytest.raises(ValueError, match='integer tensor'):
        runner.encode_text(torch.zeros(1, 5))
    with pytest.raises(TypeError, match='torch.Tensor or a numpy array'):
        runner.encode_text([[2, 3]])


@pytest.mark.slow
def test_export_finds_a_model_in_a_given_cache_and_returns_the_files_written(hub_cache, tmp_path):
    out = tmp_path / 'onnx'
    paths = export_onnx('ruclip-vit-base-patch32-224', out, cache_dir=str(hub_cache), local_files_only=True)
    assert paths == {key: str(out / name) for key, name in (('image', IMAGE_FILE), ('text', TEXT_FILE),
                                                            ('config', 'config.json'), ('bpe_model', 'bpe.model'))}
    assert sorted(path.name for path in out.iterdir()) == sorted([EXPORT_RECORD, *map(os.path.basename, paths.values())])


def test_export_refuses_the_checkpoint_folder_and_a_folder_with_files(tiny_checkpoint, tmp_path, loaded):
    before = {path.name: path.read_bytes() for path in tiny_checkpoint.iterdir()}
    with pytest.raises(ValueError, match='is the checkpoint folder being exported'):
        export_onnx(tiny_checkpoint, tiny_checkpoint, overwrite=True)
    assert {path.name: path.read_bytes() for path in tiny_checkpoint.iterdir()} == before
    (tmp_path / 'notes.txt').write_text('mine')
    with pytest.raises(ValueError, match='is not empty.*overwrite=True'):
        export_onnx(loaded[0], tmp_path)


@pytest.mark.parametrize('opset', [16, 99, 18.0, True])
def test_export_refuses_an_opset_the_exporter_cannot_write(tmp_path, loaded, opset):
    with pytest.raises(ValueError, match=r'opset must be an integer from 17 to \d+'):
        export_onnx(loaded[0], tmp_path, opset=opset)
    assert list(tmp_path.iterdir()) == []


def test_export_needs_the_torch_export_based_exporter(tmp_path, loaded, monkeypatch):
    monkeypatch.setattr(torch, '__version__', '2.5.1')
    with pytest.raises(ImportError, match=r"needs torch>=2.6, found 2.5.1.*pip install -U 'torch>=2.6'"):
        export_onnx(loaded[0], tmp_path)


def test_export_and_runner_errors(tmp_path, loaded):
    clip, _ = loaded
    with pytest.raises(FileNotFoundError, match='export_onnx'):
        OnnxCLIP(tmp_path)
