"""backends.resolve: which backend and precision each (backend, dtype) asks for, before anything loads."""
import importlib.util

import pytest
import torch

from ruclip import backends
from ruclip._device import auto_dtype

CPU = torch.device('cpu')


@pytest.mark.parametrize('backend, dtype, expected', [
    ('auto', None, ('openvino', 'auto')),
    ('auto', 'auto', ('openvino', 'auto')),  # what the command line runs by default
    ('openvino', 'auto', ('openvino', 'auto')),
    ('openvino', 'AUTO', ('openvino', 'auto')),
    ('openvino', None, ('openvino', 'fp32')),  # an explicit backend keeps float32 as its default
    ('auto', 'fp32', ('openvino', 'fp32')),
    ('auto', torch.bfloat16, ('openvino', 'bf16')),
    ('openvino', 'int8', ('openvino', 'int8')),
    ('torch', None, ('torch', torch.float32)),  # ruclip.load's default: the original's numbers
    ('torch', 'auto', ('torch', auto_dtype(CPU))),
])
def test_resolve_with_openvino_installed(backend, dtype, expected):
    pytest.importorskip('openvino')  # the [openvino] extra
    assert backends.resolve(backend, dtype, CPU) == expected


@pytest.mark.parametrize('dtype, expected', [(None, torch.float32), ('auto', auto_dtype(CPU)), ('int8', torch.float32),
                                             ('fp32', torch.float32)])
def test_auto_without_openvino_is_torch(monkeypatch, dtype, expected):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if name == 'openvino' else real(name, *a))
    assert backends.resolve('auto', dtype, CPU) == ('torch', expected)


def test_auto_off_the_cpu_is_torch():
    assert backends.resolve('auto', None, torch.device('meta')) == ('torch', torch.float32)
    with pytest.raises(ValueError, match="backend='openvino' runs on the CPU, got device='meta'"):
        backends.resolve('openvino', None, torch.device('meta'))


def test_an_evaluation_records_the_backend_and_dtype_of_the_identity(tiny_checkpoint):
    import ruclip
    from ruclip.evaluation.scoreboard import runtime
    clip, processor = ruclip.load(tiny_checkpoint, dtype='bf16')
    assert runtime(ruclip.Predictor(clip, processor)) == dict(backend='torch', dtype='bfloat16')

