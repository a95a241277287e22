"""ONNX export of the image and text towers, and OnnxCLIP: the same latents from onnxruntime.

export_onnx writes two graphs with a dynamic batch axis; the text graph also takes any length up to
context_length, so OnnxCLIP can trim each batch to its longest text as CLIP.encode_text does.
"""
import copy
import json
import os
import shutil
from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._checks import count
from .._device import resolve_dtype
from .._optional import require
from .._outputs import check_export_folder, check_outside, replacing_folder
from ..model import CLIP, ImageTower, TextTower, find_eos

IMAGE_FILE = 'image.onnx'
TEXT_FILE = 'text.onnx'
DEFAULT_OPSET = 18
MIN_OPSET = 17
MIN_TORCH = (2, 6)  # torch.onnx.export(dynamo=True, dynamic_shapes=...) returning an ONNXProgram with .model
EXTERNAL_DATA_BYTES = 1 << 30  # a tower with more weight bytes keeps them in a '.onnx.data' file beside it


def export_onnx(model: Union[CLIP, str, os.PathLike], out_dir: Union[str, os.PathLike], *,
                opset: int = DEFAULT_OPSET, dtype: Optional[torch.dtype] = None, overwrite: bool = False,
                cache_dir: Optional[str] = None, revision: Optional[str] = None,
                token: Optional[Union[str, bool]] = None, local_files_only: bool = False) -> Dict[str, str]:
    """Write image.onnx and text.onnx, plus config.json, into out_dir; return the paths written.

    Both graphs take any batch size; text.onnx takes any length up to context_length. Inputs stay
    float32 pixel_values and int64 input_ids, outputs float32 latents, whatever the dtype. A tower
    with more than 1 GiB of weights keeps them in a '.onnx.data' file beside its graph.

    Args:
        model: a loaded CLIP, or a name of ruclip.MODELS or a checkpoint folder, found as
            ruclip.load finds it; then its bpe.model is copied too, so out_dir also serves
            `RuCLIPProcessor.from_pretrained(out_dir)`.
        out_dir: a new or empty folder (never the checkpoint's own, nor one inside it or inside a
            cached model of a Hugging Face cache). The files are written into a temporary folder
            beside it and renamed into place once all are written: a failed export leaves nothing.
        opset: the ONNX opset, from 17 to the newest the installed torch exporter knows.
        dtype: the weights' dtype inside the graphs (torch.float16 halves the files); the model's
            own by default.
        overwrite: write into a folder holding files, replacing only files an earlier export wrote.
        cache_dir: as for ruclip.load, when `model` is a name.
        revision: as for ruclip.load.
        token: as for ruclip.load.
        local_files_only: as for ruclip.load.

    Returns:
        The paths written, keyed 'image', 'text', 'config', 'bpe_model' (when exported from a name
        or folder), and 'image_data' / 'text_data' for external weights.

    Raises:
        ValueError: an opset out of range, or an out_dir that is refused (named with the reason).
        TypeError: model is neither a CLIP nor a name or folder.
        RuntimeError: the installed torch could not export a graph at this opset.
        ImportError: the `onnx` extra is not installed.
    """
    require('onnxscript', 'onnx', 'ONNX export')
    require('onnx', 'onnx', 'ONNX export')
    require('torch', 'onnx', 'ONNX export (the torch.export-based exporter)', MIN_TORCH)
    check_opset(opset)
    dtype = None if dtype is None else resolve_dtype(dtype)
    out_dir = check_export_folder(out_dir, model, overwrite)
    folder = None
    if not isinstance(model, CLIP):
        from ..pretrained import checkpoint_folder
        folder = checkpoint_folder(model, cache_dir=cache_dir, revision=revision, token=token,
                                   local_files_only=local_files_only)
        check_outside(out_dir, folder)
        model = CLIP.from_pretrained(folder, dtype=dtype)
    elif dtype is not None and dtype != model.dtype:
        model = copy.deepcopy(model).to(dtype)
    model = model.eval()

    size, device = model.config.image_resolution, model.device
    batch = torch.export.Dim('batch')
    length = torch.export.Dim('length', max=model.context_length)
    example_ids = torch.zeros(2, model.context_length, dtype=torch.long, device=device)  # [2, context_length]
    example_ids[:, 1] = model.eos_id
    written = {}
    with replacing_folder(out_dir, record=True) as temporary:
        written.update(_export(ImageTower(model), torch.zeros(2, 3, size, size, device=device), 'pixel_values',
                               'image_latents', {0: batch}, os.path.join(temporary, IMAGE_FILE), opset, model, 'image'))
        written.update(_export(TextTower(model), example_ids, 'input_ids', 'text_latents', {0: batch, 1: length},
                               os.path.join(temporary, TEXT_FILE), opset, model, 'text'))
        written['config'] = os.path.join(temporary, 'config.json')
        with open(written['config'], 'w', encoding='utf-8') as f:
            json.dump(model.config.to_dict(), f, indent=2)
        if folder is not None:
            written['bpe_model'] = os.path.join(temporary, 'bpe.model')
            shutil.copyfile(os.path.join(folder, 'bpe.model'), written['bpe_model'])
    paths = {key: os.path.join(out_dir, os.path.relpath(path, temporary)) for key, path in written.items()}
    return paths


def max_opset() -> int:
    """The newest ONNX opset the installed torch exporter converts to."""
    from torch.onnx import _constants
    return getattr(_constants, 'ONNX_MAX_OPSET', DEFAULT_OPSET)


def check_opset(opset) -> int:
    """opset as an int if the installed exporter writes it, else a ValueError giving the range."""
    try:
        number = count('opset', opset, minimum=MIN_OPSET)
    except ValueError:
        number = None
    if number is None or number > max_opset():
        raise ValueError(f'opset must be an integer from {MIN_OPSET} to {max_opset()} (the newest this torch '
                         f'{torch.__version__} exports), got {opset!r}')
    return number


def _export(tower: nn.Module, example: torch.Tensor, input_name: str, output_name: str, dynamic_dims: dict,
            path: str, opset: int, model: CLIP, key: str) -> Dict[str, str]:
    weight_bytes = sum(p.numel() * p.element_size() for p in tower.parameters())
    program = torch.onnx.export(tower.eval(), (example,), input_names=[input_name], output_names=[output_name],
                                dynamic_shapes={input_name: dynamic_dims}, opset_version=opset, dynamo=True,
                                verbose=False)
    if program.model.opset_imports.get('') != opset:
        raise RuntimeError(f'torch {torch.__version__} could not convert the {key} graph to opset {opset} '
                           f'(it holds opset {program.model.opset_imports.get("")}); try opset {DEFAULT_OPSET}')
    program.model.metadata_props.update({
        'ruclip.eos_id': str(model.eos_id),
        'ruclip.context_length': str(model.context_length),
        'ruclip.dtype': str(model.dtype).replace('torch.', ''),
    })
    external_data = weight_bytes > EXTERNAL_DATA_BYTES
    program.save(path, external_data=external_data)
    return {key: path, f'{key}_data': path + '.data'} if external_data else {key: path}


class OnnxCLIP:
    """The towers written by export_onnx, run on onnxruntime; encode_image and encode_text as CLIP's.

    Takes RuCLIPProcessor's outputs (torch tensors or numpy arrays) and returns float32 torch
    tensors.

    Args:
        folder: a folder written by export_onnx (image.onnx and text.onnx).
        providers: onnxruntime execution providers, ['CPUExecutionProvider'] by default.
        session_options (onnxruntime.SessionOptions | None): options for both sessions.

    Raises:
        FileNotFoundError: image.onnx or text.onnx is missing.
        ImportError: onnxruntime is not installed (the `onnx` extra).
    """

    def __init__(self, folder: Union[str, os.PathLike], providers: Optional[Sequence] = None,
                 session_options=None):
        ort = require('onnxruntime', 'onnx', 'OnnxCLIP')
        folder = os.fspath(folder)
        sessions = []
        for name in (IMAGE_FILE, TEXT_FILE):
            path = os.path.join(folder, name)
            if not os.path.isfile(path):
                raise FileNotFoundError(f'{path} not found: a folder written by ruclip.export_onnx holds '
                                        f'{IMAGE_FILE} and {TEXT_FILE}')
            sessions.append(ort.InferenceSession(path, sess_options=session_options,
                                                 providers=list(providers or ['CPUExecutionProvider'])))
        self.image_session, self.text_session = sessions
        self.image_resolution = self.image_session.get_inputs()[0].shape[-1]
        metadata = self.text_session.get_modelmeta().custom_metadata_map
        self.eos_id = int(metadata.get('ruclip.eos_id', 3))
        self.context_length = int(metadata.get('ruclip.context_length', 77))

    def encode_image(self, pixel_values, normalize: bool = False) -> torch.Tensor:
        """Image latents of processed images.

        Args:
            pixel_values (torch.Tensor | numpy.ndarray): `[B, 3, S, S]` floats, RuCLIPProcessor's
                `pixel_values`.
            normalize: L2-normalise the latents.

        Returns:
            `[B, embed_dim]` float32 tensor.

        Raises:
            TypeError: neither a tensor nor an array.
            ValueError: a shape other than `[B, 3, S, S]`, integer values, or no images.
        """
        pixels = _as_numpy(pixel_values, 'pixel_values')
        size = self.image_resolution
        if pixels.ndim != 4 or pixels.shape[1:] != (3, size, size) or pixels.dtype.kind != 'f':
            raise ValueError(f'pixel_values must be floats of shape [batch, 3, {size}, {size}] for this model, '
                             f'got {pixels.dtype} of shape {list(pixels.shape)}')
        if pixels.shape[0] == 0:
            raise ValueError('pixel_values is empty: encode at least one image')
        latents = self.image_session.run(None, {'pixel_values': pixels.astype(np.float32, copy=False)})[0]
        return _latents(latents, normalize)

    def encode_text(self, input_ids, normalize: bool = False) -> torch.Tensor:
        """Text latents of token ids, each row holding an eos token.

        Each batch is cut after its last eos before it runs, as CLIP.encode_text does.

        Args:
            input_ids (torch.Tensor | numpy.ndarray): `[B, T]` integer ids, RuCLIPProcessor's
                `input_ids`.
            normalize: L2-normalise the latents.

        Returns:
            `[B, embed_dim]` float32 tensor.

        Raises:
            TypeError: neither a tensor nor an array.
            ValueError: not a 2-D integer array, no rows, more positions than the context length, or
                a row without an eos token.
        """
        ids = _as_numpy(input_ids, 'input_ids')
        length = int(find_eos(torch.from_numpy(ids), self.eos_id, self.context_length).max()) + 1
        feed = np.ascontiguousarray(ids[:, :length], dtype=np.int64)
        latents = self.text_session.run(None, {'input_ids': feed})[0]
        return _latents(latents, normalize)


def _as_numpy(value, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    raise TypeError(f'{name} must be a torch.Tensor or a numpy array, got {type(value).__name__}')


def _latents(latents: np.ndarray, normalize: bool) -> torch.Tensor:
    latents = torch.from_numpy(latents)
    return F.normalize(latents, dim=-1) if normalize else latents
