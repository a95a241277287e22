"""Reading checkpoint weights safely and putting them into a model built on the meta device."""
import os
import pickle
import zipfile
from typing import Dict

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
            raise ValueError(f'{safetensors_path} is corrupt or not a safetensors file: {error}') from None
    if not os.path.isfile(bin_path):
        raise FileNotFoundError(f'no weights in {folder}: expected {WEIGHT_FILES[1]} (or {WEIGHT_FILES[0]})')
    state_dict = _torch_load(bin_path)
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f'{bin_path} does not hold a state_dict (a dict of tensors)')
    return state_dict


def _torch_load(path: str):
    try:
        # mmap keeps the file's pages out of our heap; older (non-zip) pickles cannot be mapped
        mmap = zipfile.is_zipfile(path)
        return torch.load(path, map_location='cpu', weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        unsafe = [line for line in lines if 'GLOBAL' in line.upper()]
        if unsafe:
            raise ValueError(f'{path} could not be loaded safely (weights_only=True): it holds more than '
                             f'tensors ({unsafe[0]})') from None
        reason = next((line for line in lines if 'WeightsUnpickler error' in line or 'operand' in line), lines[0])
        raise ValueError(f'{path} is corrupt or not a PyTorch checkpoint: {reason}') from None
    except Exception as error:  # torch.load on arbitrary bytes fails in many ways (struct, KeyError, EOF, ...)
        raise ValueError(f'{path} is corrupt or not a PyTorch checkpoint: {error}') from None


def assign_state_dict(model: nn.Module, state_dict: Dict[str, torch.Tensor]) -> None:
    """Load with strict key and shape checks, taking the tensors themselves (no copy)."""
    expected = model.state_dict()
    missing = sorted(expected.keys() - state_dict.keys())
    unexpected = sorted(state_dict.keys() - expected.keys())
    wrong_shape = [f'{k}: checkpoint {list(state_dict[k].shape)}, model {list(v.shape)}'
                   for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape]
    if missing or unexpected or wrong_shape:
        problems = []
        if missing:
            problems.append(f'missing keys {_shorten(missing)}')
        if unexpected:
            problems.append(f'unexpected keys {_shorten(unexpected)}')
        if wrong_shape:
            problems.append(f'shape mismatches {_shorten(wrong_shape)}')
        raise ValueError('checkpoint does not match config.json: ' + '; '.join(problems))
    model.load_state_dict(state_dict, strict=True, assign=True)


def _shorten(items, limit=5):
    return items if len(items) <= limit else items[:limit] + [f'... {len(items) - limit} more']
