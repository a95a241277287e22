"""Where and in which precision a model runs: device and dtype arguments checked and resolved, and
which half-precision formats this machine's CPU computes natively.

A CPU without bf16 (or fp16) units emulates those formats, 30-40x slower than float32 (see
benchmarks/RESULTS.md), so dtype='auto' picks them only where they are native, and an explicit
request for one on such a CPU is carried out with a warning, once per process.
"""
import functools
import os
import warnings
from typing import Optional

import torch

DTYPES = {
    'float32': torch.float32, 'fp32': torch.float32,
    'bfloat16': torch.bfloat16, 'bf16': torch.bfloat16,
    'float16': torch.float16, 'fp16': torch.float16, 'half': torch.float16,
}


AUTO = 'auto'
_warned = set()


def resolve_dtype(dtype, device: Optional[torch.device] = None) -> torch.dtype:
    """None -> torch.float32; 'auto' -> the fastest dtype that keeps the documented accuracy on
    `device` (auto_dtype; None: the CPU); a floating torch.dtype or its name -> that dtype, with a
    warning when the model is to run on `device` and that is a CPU that only emulates it."""
    dtype = _named_dtype(dtype, device or torch.device('cpu'))
    if device is not None and device.type == 'cpu' and dtype in (torch.bfloat16, torch.float16) and not cpu_computes(dtype):
        name = 'bf16' if dtype == torch.bfloat16 else 'fp16'
        if name not in _warned:
            _warned.add(name)
            warnings.warn(f'{name} on this CPU ({cpu_class()}, no {name} units) is emulated and runs about 30-40x '
                          f"slower than float32; pass dtype='auto' (or torch.float32) for the fastest dtype here",
                          RuntimeWarning, stacklevel=3)
    return dtype


def auto_dtype(device: torch.device) -> torch.dtype:
    """bf16 on a CUDA GPU that supports it and on a CPU with bf16 units (AMX, AVX512-BF16); else float32."""
    if device.type == 'cuda':
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if device.type == 'cpu' and cpu_computes(torch.bfloat16):
        return torch.bfloat16
    return torch.float32


def cpu_class() -> str:
    """What this CPU computes natively, in the words benchmarks/RESULTS.md uses: 'AMX', 'AVX512-BF16',
    'AVX512', 'AVX2', or torch's capability name on other machines ('DEFAULT', ...)."""
    capability = torch.backends.cpu.get_cpu_capability()
    if capability.startswith('AVX512') and _onednn_may_use('BF16'):
        flags = _cpu_flags()
        if 'amx_bf16' in flags and _onednn_may_use('AMX'):
            return 'AMX'
        if 'avx512_bf16' in flags:
            return 'AVX512-BF16'
    return capability


def cpu_computes(dtype: torch.dtype) -> bool:
    """Whether this CPU's matmuls run `dtype` natively (float32 always does)."""
    if dtype == torch.float32:
        return True
    if dtype == torch.bfloat16:
        return cpu_class() in ('AMX', 'AVX512-BF16')
    if dtype == torch.float16:
        return cpu_class() == 'AMX' and 'amx_fp16' in _cpu_flags() or (
            cpu_class().startswith('AVX512') and 'avx512_fp16' in _cpu_flags())
    return False


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset:
    """The flags of /proc/cpuinfo (Linux); empty elsewhere."""
    try:
        with open('/proc/cpuinfo', encoding='ascii', errors='replace') as file:
            for line in file:
                if line.startswith('flags'):
                    return frozenset(line.split(':', 1)[1].split())
    except OSError:
        pass
    return frozenset()


def _onednn_may_use(feature: str) -> bool:
    """Whether ONEDNN_MAX_CPU_ISA (oneDNN's cap on the instructions it uses) leaves `feature` on."""
    cap = os.environ.get('ONEDNN_MAX_CPU_ISA', 'ALL').upper()
    return cap == 'ALL' or feature in cap or feature == 'BF16' and 'AMX' in cap


def _named_dtype(dtype, device: torch.device) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str) and dtype.lower() == AUTO:
        return auto_dtype(device)
    if isinstance(dtype, str) and dtype.lower().removeprefix('torch.') in DTYPES:
        return DTYPES[dtype.lower().removeprefix('torch.')]
    if dtype in (torch.float32, torch.bfloat16, torch.float16):
        return dtype
    if isinstance(dtype, str) and _is_device(dtype):
        raise ValueError(f'dtype={dtype!r} looks like a device: pass device={dtype!r}')
    raise ValueError(f"Unknown dtype {dtype!r}; choose 'auto', one of torch.float32, torch.bfloat16, "
                     f'torch.float16 or their names {sorted(DTYPES)}')


def resolve_device(device) -> torch.device:
    """None -> cpu; a torch.device, or a name torch knows ('cpu', 'cuda', 'cuda:1', 'mps'), that is here."""
    if device is None:
        return torch.device('cpu')
    if not _is_device(device):
        raise ValueError(f"device={device!r} is not a device torch knows; pass 'cpu', 'cuda', 'cuda:1', 'mps' "
                         f"or a torch.device")
    device = torch.device(device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f"device='{device}' but this torch sees no CUDA GPU (torch.cuda.is_available() is False)")
    try:
        torch.empty(0, device=device)  # 'mps' off a Mac, 'cuda:3' on a one-GPU machine, ...
    except (RuntimeError, AssertionError) as error:
        raise ValueError(f"device='{device}' cannot be used here: {str(error).splitlines()[0]}") from None
    return device


def _is_device(name) -> bool:
    try:
        torch.device(name)
    except (RuntimeError, TypeError):
        return False
    return True
