"""`ruclip export-onnx` and `ruclip export-hf` against a tiny checkpoint folder."""
import pytest

from ruclip.cli import main


def test_export_onnx_command(tiny_checkpoint, tmp_path, capsys):
    onnx = pytest.importorskip('onnx')
    pytest.importorskip('onnxruntime')
    out = tmp_path / 'onnx'
    assert main(['export-onnx', '--model', str(tiny_checkpoint), '--out', str(out), '--opset', '17', '--fp16']) == 0
    names = ['bpe.model', 'config.json', 'image.onnx', 'text.onnx']
    assert capsys.readouterr().out.splitlines() == [str(out / name) for name in names]
    graph = onnx.load(str(out / 'text.onnx'), load_external_data=False)
    assert {p.key: p.value for p in graph.metadata_props}['ruclip.dtype'] == 'float16'
    assert {o.domain: o.version for o in graph.opset_import}[''] == 17


def test_export_hf_command(tiny_checkpoint, tmp_path, capsys):
    transformers = pytest.importorskip('transformers')
    out = tmp_path / 'hf'
    assert main(['export-hf', '--model', str(tiny_checkpoint), '--out', str(out), '--no-lowercase']) == 0
    assert str(out / 'model.safetensors') in capsys.readouterr().out.splitlines()
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    assert tokenizer.backend_tokenizer.normalizer is None
    assert transformers.CLIPModel.from_pretrained(out).config.projection_dim == 24


def test_bad_model_is_a_usage_error(tmp_path, capsys):
    assert main(['export-hf', '--model', 'ruclip-vit-huge', '--out', str(tmp_path)]) == 2
    assert "ruclip export-hf: error: Unknown model 'ruclip-vit-huge'" in capsys.readouterr().err


def test_bad_opset_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(['export-onnx', '--model', 'x', '--out', str(tmp_path), '--opset', '13'])
    assert exit_info.value.code == 2
    assert 'expected an integer >= 17' in capsys.readouterr().err


def test_missing_extra_names_it(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    import importlib
    real_import = importlib.import_module

    def without_onnxscript(name, *args):
        if name == 'onnxscript':
            raise ImportError("No module named 'onnxscript'")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, 'import_module', without_onnxscript)
    assert main(['export-onnx', '--model', str(tiny_checkpoint), '--out', str(tmp_path)]) == 3
    assert "pip install 'ruclip[onnx]'" in capsys.readouterr().err
