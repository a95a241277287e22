"""`ruclip export-onnx` and `ruclip export-hf` against a tiny checkpoint folder."""
import shutil

import pytest

from ruclip.cli import main

# what each export checks for before it looks at its arguments: the tests of those checks need it
EXTRA = {'export-onnx': ['onnx', 'onnxscript'], 'export-hf': ['transformers']}


def needs_the_extra_of(command: str) -> None:
    for module in EXTRA[command]:
        pytest.importorskip(module)


def test_export_onnx_command(tiny_checkpoint, tmp_path, capfd):
    """-q: not a word on stderr, though opset 17 makes the exporter warn about its conversion."""
    onnx = pytest.importorskip('onnx')
    pytest.importorskip('onnxruntime')
    out = tmp_path / 'onnx'
    out.mkdir()
    (out / 'notes.txt').write_text('mine')
    assert main(['export-onnx', '--model', str(tiny_checkpoint), '--out', str(out), '--opset', '17', '--fp16',
                 '-q', '--overwrite']) == 0
    names = ['bpe.model', 'config.json', 'image.onnx', 'text.onnx']  # the files written, not notes.txt
    assert capfd.readouterr() == (''.join(f'{out / name}\n' for name in names), '')
    graph = onnx.load(str(out / 'text.onnx'), load_external_data=False)
    assert {p.key: p.value for p in graph.metadata_props}['ruclip.dtype'] == 'float16'
    assert {o.domain: o.version for o in graph.opset_import}[''] == 17


def test_export_hf_command(tiny_checkpoint, tmp_path, capfd):
    transformers = pytest.importorskip('transformers')
    out = tmp_path / 'hf'
    assert main(['export-hf', '--model', str(tiny_checkpoint), '--out', str(out), '--no-lowercase', '-q']) == 0
    written, err = capfd.readouterr()
    assert str(out / 'model.safetensors') in written.splitlines() and err == ''  # no progress bars
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    assert tokenizer.backend_tokenizer.normalizer is None
    assert transformers.CLIPModel.from_pretrained(out).config.projection_dim == 24


def test_bad_model_is_a_usage_error(tmp_path, capsys):
    needs_the_extra_of('export-hf')
    assert main(['export-hf', '--model', 'ruclip-vit-huge', '--out', str(tmp_path)]) == 2
    assert "ruclip export-hf: error: Unknown model 'ruclip-vit-huge'" in capsys.readouterr().err


@pytest.mark.parametrize('opset', ['13', '99', '²', 'x'])
def test_bad_opset_is_refused_by_the_parser(tmp_path, capsys, opset):
    with pytest.raises(SystemExit) as exit_info:
        main(['export-onnx', '--model', 'x', '--out', str(tmp_path), '--opset', opset])
    assert exit_info.value.code == 2
    assert '--opset: opset must be an integer from 17 to ' in capsys.readouterr().err


@pytest.mark.parametrize('command', ['export-onnx', 'export-hf'])
def test_out_that_holds_files_is_refused_and_the_checkpoint_is_never_written(tiny_checkpoint, tmp_path, capsys,
                                                                              command):
    needs_the_extra_of(command)
    checkpoint = shutil.copytree(tiny_checkpoint, tmp_path / 'checkpoint')
    before = {path.name: path.read_bytes() for path in checkpoint.iterdir()}
    (tmp_path / 'other').mkdir()
    (tmp_path / 'other' / 'config.json').write_text('{}')
    for out, flags, message in ((checkpoint, [], 'is the checkpoint folder being exported'),
                                (checkpoint, ['--overwrite'], 'is the checkpoint folder being exported'),
                                (tmp_path / 'other', [], 'is not empty'),
                                (checkpoint / 'config.json', ['--overwrite'], 'is inside the checkpoint folder'),
                                (checkpoint / 'new', ['--overwrite'], 'is inside the checkpoint folder'),
                                (tmp_path / 'other' / 'config.json', ['--overwrite'], 'is a file, expected a folder')):
        assert main([command, '--model', str(checkpoint), '--out', str(out), *flags]) == 2
        written, err = capsys.readouterr()
        assert written == '' and err.startswith(f'ruclip {command}: error: ') and message in err
    assert {path.name: path.read_bytes() for path in checkpoint.iterdir()} == before
    assert (tmp_path / 'other' / 'config.json').read_text() == '{}'


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


def test_a_failed_export_leaves_no_folder_and_checks_its_packages_before_loading(tmp_path, tiny_checkpoint,
                                                                                  monkeypatch):
    needs_the_extra_of('export-onnx')
    needs_the_extra_of('export-hf')
    import ruclip
    import ruclip.export.hf
    for export in (ruclip.export_onnx, ruclip.export_hf):
        out = tmp_path / export.__name__
        with pytest.raises(ValueError, match='Unknown model'):
            export('ruclip-vit-nope', out)
        assert not out.exists()

    def missing(*args, **kwargs):
        raise ImportError('the transformers export needs transformers')
    monkeypatch.setattr(ruclip.export.hf, 'require', missing)
    monkeypatch.setattr(ruclip.CLIP, 'from_pretrained', lambda *args, **kwargs: pytest.fail('loaded first'))
    with pytest.raises(ImportError, match='needs transformers'):
        ruclip.export_hf(str(tiny_checkpoint), tmp_path / 'hf')
    assert not (tmp_path / 'hf').exists()
