"""Where and in which precision a model runs: device and dtype arguments checked and resolved."""
import torch

DTYPES = {
    'float32': torch.float32, 'fp32': torch.float32,
    'bfloat16': torch.bfloat16, 'bf16': torch.bfloat16,
    'float16': torch.float16, 'fp16': torch.float16, 'half': torch.float16,
}


def resolve_dtype(dtype) -> torch.dtype:
    """None -> torch.float32; a floating torch.dtype or its name -> that dtype."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str) and dtype.lower().removeprefix('torch.') in DTYPES:
        return DTYPES[dtype.lower().removeprefix('torch.')]
    if dtype in (torch.float32, torch.bfloat16, torch.float16):
        return dtype
    if isinstance(dtype, str) and _is_device(dtype):
        raise ValueError(f'dtype={dtype!r} looks like a device: pass device={dtype!r}')
    raise ValueError(f'Unknown dtype {dtype!r}; choose one of torch.float32, torch.bfloat16, torch.float16 '
                     f'or their names {sorted(DTYPES)}')


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
