"""An export interrupted (Ctrl-C: KeyboardInterrupt) leaves nothing, or the earlier export unchanged:
it is written whole into a temporary folder and renamed, or not at all."""
import os

import pytest

from ruclip import _outputs
from ruclip.cli import main
from ruclip.export.hf import export_hf

pytest.importorskip('transformers')
pytest.importorskip('tokenizers')


def interrupt_at(monkeypatch, module, name, call):
    """Make module.name raise KeyboardInterrupt at its `call`-th call (1 = the first), as Ctrl-C would."""
    real, calls = getattr(module, name), []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, interrupted)


def snapshot(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def test_interrupted_mid_export_leaves_no_folder(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    """Ctrl-C once the model's files are written, before the processor's: exit 130, nothing left."""
    import transformers

    interrupt_at(monkeypatch, transformers.CLIPProcessor, 'save_pretrained', 1)
    out = tmp_path / 'exports' / 'hf'
    assert main(['export-hf', '--model', str(tiny_checkpoint), '--out', str(out), '-q']) == 130
    assert 'interrupted' in capsys.readouterr().err
    assert not (tmp_path / 'exports').exists()  # nor the temporary folder, nor the folder made for it
    monkeypatch.undo()
    assert main(['export-hf', '--model', str(tiny_checkpoint), '--out', str(out), '-q']) == 0  # a rerun is not refused


@pytest.mark.parametrize('call', [1, 4, 6])
def test_interrupted_over_an_earlier_export_leaves_it_unchanged(tiny_checkpoint, checkpoint_factory, tmp_path,
                                                                monkeypatch, call):
    """--overwrite over an earlier export (of other weights, with another tokenizer setting): Ctrl-C
    while its files take their places leaves the earlier export whole, never half of each."""
    out = tmp_path / 'hf'
    export_hf(tiny_checkpoint, out)
    before = snapshot(out)
    interrupt_at(monkeypatch, _outputs.os, 'replace', call)  # the call-th file to take its place
    with pytest.raises(KeyboardInterrupt):
        export_hf(checkpoint_factory(seed=1), out, lowercase=False, overwrite=True)
    monkeypatch.undo()
    assert snapshot(out) == before
    assert [name for name in os.listdir(tmp_path) if name != 'hf'] == []  # no temporary or backup left
    export_hf(checkpoint_factory(seed=1), out, lowercase=False, overwrite=True)
    after = snapshot(out)
    # files are moved in sorted order: interrupting at the 4th and 6th finds a differing one moved already
    assert len(after) >= 6 and any(after[name] != before[name] for name in sorted(after)[:3])


def test_interrupted_onnx_export_leaves_no_folder(tiny_checkpoint, tmp_path, monkeypatch):
    """Ctrl-C after image.onnx is written, during the text graph."""
    pytest.importorskip('onnx')
    pytest.importorskip('onnxscript')
    from ruclip.export import onnx

    interrupt_at(monkeypatch, onnx, '_export', 2)
    with pytest.raises(KeyboardInterrupt):
        onnx.export_onnx(tiny_checkpoint, tmp_path / 'onnx')
    assert os.listdir(tmp_path) == []
