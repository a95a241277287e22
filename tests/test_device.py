"""dtype for the machine: 'auto' picks bf16 only where the CPU (or GPU) computes it natively, and an
explicit bf16/fp16 on a CPU that emulates it runs with one warning naming the cost and the alternative."""
import warnings

import pytest
import torch

import ruclip
from ruclip import _device

CPU = torch.device('cpu')
CLASSES = {  # what a machine reports -> (cpu_class, computes bf16)
    'amx': ('AVX512', {'avx2', 'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile'}, 'AMX', True),
    'zen4': ('AVX512', {'avx2', 'avx512f', 'avx512_bf16'}, 'AVX512-BF16', True),
    'skylake': ('AVX512', {'avx2', 'avx512f'}, 'AVX512', False),
    'epyc-avx2': ('AVX2', {'avx2'}, 'AVX2', False),
    'forced-avx2': ('AVX2', {'avx2', 'avx512f', 'avx512_bf16'}, 'AVX2', False),  # ATEN_CPU_CAPABILITY=avx2
}


@pytest.fixture
def machine(monkeypatch):
    def become(name):
        capability, flags, _, _ = CLASSES[name]
        monkeypatch.setattr(torch.backends.cpu, 'get_cpu_capability', lambda: capability)
        monkeypatch.setattr(_device, '_cpu_flags', lambda: frozenset(flags))
        monkeypatch.setattr(_device, '_warned', set())
        monkeypatch.delenv('ONEDNN_MAX_CPU_ISA', raising=False)
    return become


@pytest.mark.parametrize('name', list(CLASSES))
def test_cpu_class_and_auto_dtype(machine, name):
    machine(name)
    _, _, expected_class, has_bf16 = CLASSES[name]
    assert _device.cpu_class() == expected_class
    assert _device.resolve_dtype('auto', CPU) == (torch.bfloat16 if has_bf16 else torch.float32)
    assert _device.resolve_dtype(None, CPU) == torch.float32  # the default stays the original's


def test_onednn_cap_turns_bf16_off(machine, monkeypatch):
    machine('amx')
    monkeypatch.setenv('ONEDNN_MAX_CPU_ISA', 'AVX2')
    assert _device.cpu_class() == 'AVX512' and _device.resolve_dtype('auto', CPU) == torch.float32


@pytest.mark.parametrize('dtype, name', [(torch.bfloat16, 'bf16'), ('fp16', 'fp16')])
def test_emulated_dtype_warns_once_with_the_alternative(machine, dtype, name):
    machine('epyc-avx2')
    with pytest.warns(RuntimeWarning, match=rf"{name} on this CPU \(AVX2, no {name} units\) is emulated.*"
                                            r"dtype='auto' \(or torch.float32\)"):
        assert _device.resolve_dtype(dtype, CPU) == (torch.bfloat16 if name == 'bf16' else torch.float16)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        _device.resolve_dtype(dtype, CPU)  # once per process
        _device.resolve_dtype(dtype)  # no device: a storage dtype (an export), no warning


def test_native_bf16_does_not_warn(machine):
    machine('zen4')
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert _device.resolve_dtype('bf16', CPU) == torch.bfloat16


def test_load_auto_follows_the_machine(machine, tiny_checkpoint):
    for name, expected in (('epyc-avx2', torch.float32), ('amx', torch.bfloat16)):
        machine(name)
        clip, _ = ruclip.load(str(tiny_checkpoint), dtype='auto')
        assert clip.dtype == expected
    with pytest.warns(RuntimeWarning, match='bf16 on this CPU'):
        machine('epyc-avx2')
        ruclip.load(str(tiny_checkpoint), dtype=torch.bfloat16)


def test_auto_on_cuda_follows_bf16_support(monkeypatch):
    for supported, expected in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda: supported)
        assert _device.auto_dtype(torch.device('cuda')) == expected
