"""Optional dependencies: a missing or too old package names the extra that installs it."""
import importlib

import pytest

from ruclip import _optional as extras


def test_missing_package_names_the_extra(monkeypatch):
    def no_module(name):
        raise ImportError(f"No module named '{name}'")

    monkeypatch.setattr(importlib, 'import_module', no_module)
    with pytest.raises(ImportError, match=r"OnnxCLIP needs the 'onnxruntime' package.*pip install 'ruclip\[onnx\]'"):
        extras.require('onnxruntime', 'onnx', 'OnnxCLIP')


def test_a_failing_import_inside_the_package_names_the_module_that_failed(monkeypatch):
    def onnxscript_without_onnx(name):
        raise ImportError("No module named 'onnx.defs'", name='onnx.defs')

    monkeypatch.setattr(importlib, 'import_module', onnxscript_without_onnx)
    with pytest.raises(ImportError, match=r"ONNX export needs the 'onnx' package.*pip install 'ruclip\[onnx\]'"):
        extras.require('onnxscript', 'onnx', 'ONNX export')


def test_old_package_names_the_minimum_version():
    with pytest.raises(ImportError, match=r"needs pytest>=999.0, found .*pip install -U 'pytest>=999.0'"):
        extras.require('pytest', 'hf', 'the test', min_version=(999, 0))
    assert extras.require('pytest', 'hf', 'the test', min_version=(1,)).__name__ == 'pytest'


@pytest.mark.parametrize('version, expected', [('0.19.1', (0, 19, 1)), ('2.14.1+cu130', (2, 14, 1)),
                                               ('1.0rc1', (1, 0)), ('dev', ())])
def test_version_tuple(version, expected):
    assert extras._version_tuple(version) == expected


def test_plots_without_matplotlib_name_the_extra(monkeypatch):
    import sys

    import torch

    import ruclip
    monkeypatch.setitem(sys.modules, 'matplotlib.figure', None)  # import fails with ModuleNotFoundError
    top = ruclip.top_k(torch.tensor([[0.9, 0.1]]), 1, ['a', 'b'])
    with pytest.raises(ImportError, match=r"plotting needs the 'matplotlib' package.*pip install 'ruclip\[plot\]'"):
        ruclip.probability_bars([torch.zeros(3, 8, 8)], top)
