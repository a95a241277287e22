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

    'auto' takes OpenVINO when it is installed and the device is the CPU, else torch; with dtype None
    it then picks int8 when int8 reaches the cosine gate on this checkpoint, else fp32.
    """
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f'Unknown backend {backend!r}; choose one of {list(BACKENDS)}')
    if backend == 'auto':
        usable = device.type == 'cpu' and importlib.util.find_spec('openvino') is not None
        if not usable:
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
    if _is_int8(dtype):
        return 'openvino', 'int8'
    dtype = resolve_dtype(dtype)
    if dtype not in OPENVINO_DTYPES:
        raise ValueError(f"backend='openvino' takes dtype torch.float32, torch.bfloat16 or 'int8', got {dtype}")
    return 'openvino', OPENVINO_DTYPES[dtype]


def load(folder: str, precision: str):
    """An OpenVINOCLIP for the checkpoint folder; precision 'auto': int8 if it passes the gate, else fp32."""
    from . import _int8
    from .openvino import load_openvino

    if precision != 'auto':
        return load_openvino(folder, precision)
    model = load_openvino(folder, 'int8', warn_int8=False)
    return model if model.int8_cosine >= _int8.MIN_COSINE else load_openvino(folder, 'fp32')


def _is_int8(dtype) -> bool:
    return isinstance(dtype, str) and dtype.lower() == 'int8'
