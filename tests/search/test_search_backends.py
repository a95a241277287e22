"""An index records the backend and precision of the model that filled it: latents of PyTorch and
OpenVINO, or of fp32 and int8, are never mixed, and the command line's default keeps to the index's."""
import pytest

import ruclip
from helpers.library import predictor_for, write_library
from ruclip.cli import main


def openvino_predictor(checkpoint, dtype):
    clip, processor = ruclip.load(str(checkpoint), backend='openvino', dtype=dtype)
    return ruclip.Predictor(clip, processor, quiet=True)


def test_the_identity_covers_backend_precision_and_the_weights(tiny_checkpoint, checkpoint_factory):
    torch_fp32 = predictor_for(tiny_checkpoint).identity
    assert (torch_fp32.backend, torch_fp32.dtype) == ('torch', 'float32')
    openvino_fp32 = openvino_predictor(tiny_checkpoint, 'fp32').identity
    assert (openvino_fp32.backend, openvino_fp32.dtype) == ('openvino', 'fp32')
    other_weights = openvino_predictor(checkpoint_factory(seed=1), 'fp32').identity  # the same config
    assert len({torch_fp32.fingerprint, openvino_fp32.fingerprint, other_weights.fingerprint}) == 3
    assert openvino_predictor(tiny_checkpoint, 'fp32').identity == openvino_fp32  # stable
    assert torch_fp32.differences(openvino_fp32) == 'backend torch vs openvino, dtype float32 vs fp32'


def test_an_index_refuses_latents_of_another_backend(tmp_path, tiny_checkpoint):
    write_library(tmp_path / 'lib', 4)
    index = ruclip.ImageIndex(tmp_path / 'lib.index', openvino_predictor(tiny_checkpoint, 'fp32'))
    index.update([tmp_path / 'lib'])
    assert index.model['backend'] == 'openvino'
    with pytest.raises(ValueError, match=r"\(openvino fp32, .*not of .*\(torch float32, .*backend openvino vs torch"):
        ruclip.ImageIndex(index.path, predictor_for(tiny_checkpoint)).search('кошка')
    assert len(ruclip.ImageIndex(index.path, openvino_predictor(tiny_checkpoint, 'fp32')).search('кошка', k=2)) == 2


def test_the_command_line_default_builds_and_queries_one_precision(tmp_path, tiny_checkpoint, capsys):
    write_library(tmp_path / 'lib', 4)
    path = str(tmp_path / 'lib.index')
    assert main(['index', str(tmp_path / 'lib'), '--index', path, '--model', str(tiny_checkpoint), '-q']) == 0
    recorded = ruclip.ImageIndex(path).model
    expected = ruclip.load(tiny_checkpoint, backend='auto', dtype='auto')[0]  # what the defaults run here
    assert (recorded['backend'], recorded['dtype']) == (expected.backend, expected.precision)
    capsys.readouterr()
    assert main(['search', 'кошка', '--index', path, '-k', '2', '-f']) == 0  # the index's model and precision
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(['search', 'кошка', '--index', path, '--backend', 'torch']) == 2
    error = capsys.readouterr().err
    assert f"--backend openvino --dtype {recorded['dtype']}" in error and 'backend openvino vs torch' in error
    # an update with nothing to embed still checks the model the options name
    assert main(['index', str(tmp_path / 'lib'), '--index', path, '--backend', 'torch', '-q']) == 2
    assert main(['index', str(tmp_path / 'lib'), '--index', path, '-q']) == 0
    assert '4 unchanged' in capsys.readouterr().out


def test_an_index_of_the_torch_backend_is_queried_on_torch_by_default(tmp_path, tiny_checkpoint, capsys):
    write_library(tmp_path / 'lib', 3)
    path = str(tmp_path / 'lib.index')
    ruclip.ImageIndex(path, predictor_for(tiny_checkpoint), model_name=str(tiny_checkpoint)).update([tmp_path / 'lib'])
    assert main(['search', 'кошка', '--index', path, '-k', '2', '-f']) == 0
    assert main(['search', 'кошка', '--index', path, '--backend', 'openvino', '--dtype', 'fp32']) == 2
    assert '--backend torch --dtype fp32' in capsys.readouterr().err
