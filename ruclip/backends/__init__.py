"""Which runtime runs the towers: 'torch' (ruclip.CLIP itself), 'openvino' (backends/openvino.py) or
'auto'; and the precisions each takes. ruclip.load(..., backend=...) calls resolve() then load()."""
import importlib.util
from typing import Tuple

import torch

from .._device import resolve_dtype

BACKENDS = ('torch', 'openvino', 'auto')
OPENVINO_DTYPES = {torch.float32: 'fp32', torch.bfloat16: 'bf16'}  # and 'int8'


def resolve(backend: str, dtype, device: torch.device) -> Tuple[str, object]:
    """(backend, dtype): 'torch' and a torch.dtype, or 'openvino' and 'fp32', 'bf16', 'int8' or 'auto'.

    backend 'auto' takes OpenVINO when it is installed and the device is the CPU, else torch. OpenVINO's
    'auto' precision (dtype 'auto', or None with backend 'auto') is decided when loading, per
    checkpoint: int8 when its latents reach the cosine gate, else bf16 where the CPU has bf16 units,
    else fp32. On torch, dtype is resolve_dtype's (None: float32; 'auto': bf16 where native).
    """
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f'Unknown backend {backend!r}; choose one of {list(BACKENDS)}')
    if backend == 'auto':
        if not openvino_usable(device):
            return 'torch', resolve_dtype(None if _is_int8(dtype) else dtype, device)
        if dtype is None:
            return 'openvino', 'auto'
        backend = 'openvino'
    if backend == 'torch':
        if _is_int8(dtype):
            raise ValueError("Unknown dtype 'int8' for backend='torch'; choose 'auto', one of torch.float32, "
                             "torch.bfloat16, torch.float16 or their names; int8 runs with backend='openvino' "
                             "(pip install 'ruclip[openvino]')")
        return 'torch', resolve_dtype(dtype, device)
    if device.type != 'cpu':
        raise ValueError(f"backend='openvino' runs on the CPU, got device='{device}'")
    if _is_int8(dtype) or _is_auto(dtype):
        return 'openvino', dtype.lower()
    dtype = resolve_dtype(dtype)
    if dtype not in OPENVINO_DTYPES:
        raise ValueError(f"backend='openvino' takes dtype torch.float32, torch.bfloat16, 'int8' or 'auto', got {dtype}")
    return 'openvino', OPENVINO_DTYPES[dtype]


def openvino_usable(device: torch.device) -> bool:
    """Whether backend 'auto' takes OpenVINO for `device`: the CPU, with openvino installed."""
    return device.type == 'cpu' and importlib.util.find_spec('openvino') is not None


def load(folder: str, precision: str):
    """An OpenVINOCLIP for the checkpoint folder at `precision` (see resolve)."""
    from .openvino import load_openvino

    return load_openvino(folder, precision)


def _is_auto(dtype) -> bool:
    return isinstance(dtype, str) and dtype.lower() == 'auto'


def _is_int8(dtype) -> bool:
    return isinstance(dtype, str) and dtype.lower() == 'int8'
