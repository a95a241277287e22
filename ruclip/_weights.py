"""Reading checkpoint weights safely and putting them into a model built on the meta device."""
import bisect
import codecs
import ctypes
import functools
import mmap
import os
import pickle
import sys
import zipfile
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')


def read_state_dict(folder) -> Dict[str, torch.Tensor]:
    """The folder's model.safetensors if it has one, else its pytorch_model.bin (weights_only)."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f'checkpoint folder not found: {folder}')
    safetensors_path, bin_path = (os.path.join(folder, name) for name in WEIGHT_FILES)
    if os.path.isfile(safetensors_path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(safetensors_path)
        except (SafetensorError, OSError, ValueError) as error:
            raise _not_weights(safetensors_path, 'a safetensors file', str(error)) from None
    if not os.path.isfile(bin_path):
        raise FileNotFoundError(f'no weights in {folder}: expected {WEIGHT_FILES[1]} (or {WEIGHT_FILES[0]})')
    state_dict = _torch_load(bin_path)
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f'{bin_path} does not hold a state_dict (a dict of tensors)')
    return state_dict


def _torch_load(path: str):
    try:
        # mapped, the file never sits whole in our heap: `converted` copies it one tensor at a time;
        # older (non-zip) pickles cannot be mapped
        mappable = zipfile.is_zipfile(path)
        return torch.load(path, map_location='cpu', weights_only=True, mmap=mappable)
    except pickle.UnpicklingError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        unsafe = [line for line in lines if 'GLOBAL' in line.upper()]
        if unsafe:
            raise ValueError(f'{path} could not be loaded safely (weights_only=True): it holds more than '
                             f'tensors ({unsafe[0]})') from None
        raise _not_weights(path, 'a PyTorch checkpoint', _unpickler_reason(lines)) from None
    except Exception as error:  # torch.load on arbitrary bytes fails in many ways (struct, KeyError, EOF, ...)
        raise _not_weights(path, 'a PyTorch checkpoint', f'{type(error).__name__}: {error}') from None


def _unpickler_reason(lines: List[str]) -> str:
    """The line after torch's 'WeightsUnpickler error:' (which follows a request to file an issue)."""
    marker = 'WeightsUnpickler error:'
    for i, line in enumerate(lines):
        if marker in line:
            after = line.split(marker, 1)[1].strip()
            return after or (lines[i + 1] if i + 1 < len(lines) else line)
    return lines[0] if lines else 'not a pickle'


def _not_weights(path: str, kind: str, reason: str) -> ValueError:
    """The error for a weights file that did not load: what the file is when it can tell (empty, a Git
    LFS pointer, text), else `reason`."""
    try:
        with open(path, 'rb') as file:
            head = file.read(512)
    except OSError:  # unreadable: `reason` says so
        head = None
    if head == b'':
        reason = 'the file is empty (0 bytes); download it again'
    elif head and head.startswith(b'version https://git-lfs'):
        reason = ('it is a Git LFS pointer, not the weights: fetch the real file with `git lfs pull` in the '
                  'clone, or download the checkpoint with huggingface_hub (ruclip.load(name) does)')
    elif head and _is_text(head):
        what = 'an HTML page' if b'<html' in head.lower() or b'<!doctype' in head.lower() else 'a text file'
        reason = (f'it is {what} of {os.path.getsize(path)} bytes, not weights (it starts with '
                  f'{head[:60].decode("utf-8", "replace")!r}); download it again')
    return ValueError(f'{path} is corrupt or not {kind}: {reason}')


def _is_text(head: bytes) -> bool:
    try:
        text = codecs.getincrementaldecoder('utf-8')().decode(head)  # a character cut at the end is fine
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in '\t\n\r' for c in text)


def assign_state_dict(model: nn.Module, state_dict: Dict[str, torch.Tensor], dtype: Optional[torch.dtype] = None,
                      device=None) -> None:
    """Put the tensors, already checked against the model's config (ruclip._layout.check_state_dict),
    into `model`, converted to `dtype` (floating ones) and `device`, each in memory of its own (see
    `converted`); a ValueError names the tensors holding NaN or infinity (after the conversion, so a
    float32 value beyond float16's range counts too)."""
    tensors = converted(state_dict, dtype, device)
    check_finite(tensors)
    model.load_state_dict(tensors, strict=True, assign=True)


def check_finite(tensors: Dict[str, torch.Tensor]) -> None:
    """A ValueError naming the floating-point tensors that hold NaN or +-infinity.

    One sum per tensor, in its own dtype (torch accumulates half types in float32; asking for a
    float32 result would copy each tensor, and the copies stay in the heap), and one device
    synchronisation in all: a NaN or an infinity makes the sum non-finite. Only then, or when finite
    values overflow the sum (a float16 one may), is each element looked at, to tell which is which.
    """
    names = [name for name, tensor in tensors.items() if tensor.is_floating_point()]
    if not names:
        return
    sums = torch.stack([tensors[name].sum().double() for name in names])
    suspects = [name for name, ok in zip(names, torch.isfinite(sums).tolist()) if not ok]
    bad = []
    for name in suspects:
        tensor = tensors[name]
        nan, inf = int(torch.isnan(tensor).sum()), int(torch.isinf(tensor).sum())
        if nan or inf:
            bad.append(f'{name} ({nan} NaN, {inf} infinite of {tensor.numel()}'
                       f'{", in " + str(tensor.dtype).replace("torch.", "") if inf else ""})')
    if bad:
        raise ValueError(f'checkpoint weights must be finite numbers: {_shorten(bad)}; the file is corrupt '
                         f'(or, if it loads in float32, its values do not fit the dtype asked for)')


def converted(state_dict: Dict[str, torch.Tensor], dtype: Optional[torch.dtype] = None,
              device=None) -> Dict[str, torch.Tensor]:
    """The tensors with floating ones in `dtype`, all on `device`, converted one at a time.

    A tensor whose bytes lie in a file mapping (torch.load(mmap=True), safetensors) is copied even
    when it needs no conversion: a model sharing pages with its checkpoint file would change when the
    file is rewritten, and die of SIGBUS when it is truncated (torch.save to the same path). Once
    copied, the tensor's pages leave this process, so a load holds about one copy of the weights,
    never the whole file beside it. Other tensors that need no conversion are kept themselves.
    """
    mappings = _file_mappings()
    result = {}
    for name, tensor in state_dict.items():
        mapped = _in_file_mapping(tensor, mappings)
        result[name] = tensor.to(device=device, dtype=dtype if tensor.is_floating_point() else None, copy=mapped)
        if mapped:
            _release_pages(tensor)
    return result


def _in_file_mapping(tensor: torch.Tensor, mappings: Optional[List[Tuple[int, int]]]) -> bool:
    """Whether `tensor`'s bytes lie in a file mapping; True for every CPU tensor where that is unknown."""
    if tensor.device.type != 'cpu':
        return False
    if mappings is None:
        return True
    address = tensor.data_ptr()
    i = bisect.bisect_right(mappings, (address, float('inf'))) - 1
    return i >= 0 and address < mappings[i][1]


def _release_pages(tensor: torch.Tensor) -> None:
    """madvise(MADV_DONTNEED) on the whole pages inside `tensor`'s bytes, which a file mapping holds.

    The pages were only read, so they are clean: the page cache keeps them and a later read of the
    same bytes maps them again (two keys may share storage); only this process's RSS shrinks.
    """
    madvise = _madvise()
    if madvise is None or not tensor.is_contiguous():
        return
    page = mmap.PAGESIZE
    start = -(-tensor.data_ptr() // page) * page  # rounded up, and end down: no byte outside the tensor
    end = (tensor.data_ptr() + tensor.nbytes) // page * page
    if start < end:
        madvise(start, end - start, mmap.MADV_DONTNEED)


def _file_mappings() -> Optional[List[Tuple[int, int]]]:
    """Sorted (start, end) addresses of this process's file-backed mappings; None off Linux."""
    if _madvise() is None:
        return None
    mappings = []
    with open('/proc/self/maps') as maps:
        for line in maps:  # address perms offset dev inode [path]
            address, _, _, _, inode, *_ = line.split()
            if inode != '0':
                start, end = address.split('-')
                mappings.append((int(start, 16), int(end, 16)))
    return sorted(mappings)


@functools.lru_cache(maxsize=None)
def _madvise():
    """libc's madvise(addr, length, advice) on Linux, else None."""
    if not sys.platform.startswith('linux') or not hasattr(mmap, 'MADV_DONTNEED'):
        return None
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return madvise


def _shorten(items, limit=5):
    return items if len(items) <= limit else items[:limit] + [f'... {len(items) - limit} more']
