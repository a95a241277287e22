"""Predictor settings: templates (checked once for the Predictor and the CLI), bs and compile."""

import numpy as np
import pytest
import torch

import ruclip
from helpers.images import rgb_image
from ruclip.cli import main


@pytest.fixture(scope='module')
def loaded(tiny_checkpoint):
    return ruclip.load(str(tiny_checkpoint))


def test_numbered_placeholder_works_as_in_the_original(loaded):
    numbered = ruclip.Predictor(*loaded, 'cpu', templates=['фото {0}'], quiet=True)
    plain = ruclip.Predictor(*loaded, 'cpu', templates=['фото {}'], quiet=True)
    torch.testing.assert_close(numbered.get_text_latents(['кот']), plain.get_text_latents(['кот']), atol=0, rtol=0)


@pytest.mark.parametrize('template, cause', [('{} и {}', 'IndexError'), ('{} {x}', 'KeyError'),
                                             ('фото {', 'ValueError'), ('{{}}', 'needs a {} for the label')])
def test_templates_that_cannot_take_one_label_are_named(loaded, capsys, tmp_path, tiny_checkpoint, template, cause):
    with pytest.raises(ValueError, match=f'template {template!r}') as error:
        ruclip.Predictor(*loaded, 'cpu', templates=['{}', template])
    assert cause in str(error.value)
    photo = tmp_path / 'a.png'
    photo.write_bytes(b'')
    code = main(['classify', str(photo), '--labels', 'кот', '--templates', template, '--model', str(tiny_checkpoint), '-q'])
    err = capsys.readouterr().err
    assert code == 2 and f'--templates: template {template!r}' in err and cause in err


def test_counts_may_be_numpy_integers_and_bs_may_change(loaded):
    predictor = ruclip.Predictor(*loaded, 'cpu', bs=np.int64(4), num_workers=np.int32(1), quiet=True)
    assert predictor.bs == 4 and type(predictor.bs) is int and predictor.num_workers == 1
    predictor.bs = 2
    assert predictor.batch_size == 2
    with pytest.raises(ValueError, match=r'batch_size \(bs\) must be a positive integer, got 0'):
        predictor.bs = 0
    predictor.batch_size = 3  # this package's earlier name for it
    assert predictor.bs == predictor.batch_size == 3


def test_compile_is_read_at_first_use_and_done_once(loaded, monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, 'compile', lambda module, **options: compiled.append(module) or module)
    predictor = ruclip.Predictor(*loaded, 'cpu', quiet=True)
    predictor.compile = True
    predictor.get_image_latents([rgb_image(40, 30)])
    predictor.get_image_latents([rgb_image(40, 30)])
    assert compiled == [predictor.clip_model.visual]


def test_device_and_dtype_names_are_checked_as_load_checks_them(loaded, tmp_path):
    with pytest.raises(ValueError, match="device='gpu' is not a device torch knows"):
        ruclip.Predictor(*loaded, 'gpu')
    assert ruclip.Predictor(*loaded, torch.device('cpu'), quiet=True).device == torch.device('cpu')
    pytest.importorskip('onnxscript')
    with pytest.raises(ValueError, match="Unknown dtype 'half-ish'"):
        ruclip.export_onnx(loaded[0], tmp_path / 'onnx', dtype='half-ish')
