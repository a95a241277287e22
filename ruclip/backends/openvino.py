"""OpenVINOCLIP: both towers on OpenVINO's CPU runtime, in fp32, bf16 or int8; load_openvino builds it.

The towers are ruclip's own (ruclip.model's ImageTower and TextTower), traced by torch.jit and
converted by OpenVINO's PyTorch frontend; int8 is quantised by NNCF (backends/_int8.py). The compiled
models are written to a cache entry keyed by the checkpoint's config and weights, the precision, the
OpenVINO (and NNCF) version and this CPU, so a later load maps two files into memory and reads no
weights.
"""
import json
import os
import shutil
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import torch
from torch import nn

from .._outputs import replacing_folder
from ..config import CLIPConfig
from ..identity import weights_digest
from ..model import CLIP, ImageTower, TextTower, TwoTowerModel
from ._imports import import_openvino
from ._cache import CACHE_ENV, FORMAT, IMAGE_BLOB, META, TEXT_BLOB, cache_key, cache_root, read_meta  # noqa: F401

HINTS = {'fp32': 'f32', 'bf16': 'bf16', 'int8': 'f32'}  # INFERENCE_PRECISION_HINT (int8: what is left in float)


class OpenVINOCLIP(TwoTowerModel):
    """encode_image, encode_text and forward as CLIP's (same checks, same trim of texts), run by OpenVINO.

    Inputs are RuCLIPProcessor's torch tensors, outputs float32 torch tensors on the CPU. Each call has
    its own infer request, so several threads may use one model. `precision` is 'fp32', 'bf16' or
    'int8'; `int8_cosine`, for int8, the lowest cosine to fp32 latents measured on the check set;
    `weights_sha256`, the checkpoint's weights file's; `weights_digest`, ruclip.identity.weights_digest
    of the PyTorch model it was converted from (what its ModelIdentity records).
    """
    backend = 'openvino'

    def __init__(self, config: CLIPConfig, image, text, meta: dict, blobs=()):
        super().__init__()
        self.config = config
        self.eos_id, self.context_length = meta['eos_id'], config.context_length
        self.vocab_size = config.vocab_size
        self.precision = meta['precision']
        self.int8_cosine = meta.get('int8_cosine')
        self.cache_folder = meta.get('folder')
        self.logit_scale = nn.Parameter(torch.tensor(meta['logit_scale']), requires_grad=False)
        self.weights_sha256 = meta['weights_sha256']  # of the checkpoint's weights file
        self.weights_digest = meta['weights_digest']
        self._image, self._text = image, text
        self._blobs = blobs  # the mapped files the compiled models read their weights from: kept while they live

    dtype = torch.float32  # of the inputs and outputs, whatever the precision inside
    device = torch.device('cpu')

    def visual(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] float32 -> [B, embed_dim] image latents (no checks: encode_image makes them)."""
        return _run(self._image, pixel_values.float())

    def text_latents_at(self, input_ids: torch.Tensor, eos_positions: torch.Tensor) -> torch.Tensor:
        """[B, T] int64 -> [B, embed_dim]; the graph finds the first eos itself, as eos_positions holds."""
        return _run(self._text, input_ids.long())

    def to(self, *args, **kwargs) -> 'OpenVINOCLIP':
        """Itself, for what nn.Module.to takes that names the CPU and float32; a ValueError for any other
        device or dtype (a device, a dtype or a tensor, as arguments or keywords)."""
        device, dtype = None, None
        for value in (*args, kwargs.get('device'), kwargs.get('dtype'), kwargs.get('tensor')):
            if isinstance(value, torch.Tensor):
                device, dtype = value.device, value.dtype
            elif isinstance(value, torch.dtype):
                dtype = value
            elif isinstance(value, (str, torch.device)) or isinstance(value, int) and not isinstance(value, bool):
                device = torch.device(value)
        if device is not None and torch.device(device).type != 'cpu':
            raise ValueError(f"the OpenVINO backend runs on the CPU; got device='{device}' (load with "
                             f"backend='torch' for {torch.device(device).type})")
        if dtype is not None and dtype != torch.float32:
            raise ValueError(f'the OpenVINO backend takes and returns float32; its precision is fixed at load '
                             f'(dtype=...), got {dtype}')
        return self

    def extra_repr(self) -> str:
        return f'precision={self.precision!r}, image_resolution={self.config.image_resolution}'


def _run(compiled, x: torch.Tensor) -> torch.Tensor:
    request = compiled.create_infer_request()
    return torch.from_numpy(request.infer([x.contiguous().numpy()])[0].copy())


def load_openvino(folder: str, precision: str = 'fp32', cache_dir: Optional[str] = None,
                  warn_int8: bool = True) -> OpenVINOCLIP:
    """The checkpoint in `folder` on OpenVINO at `precision` ('fp32', 'bf16', 'int8', or 'auto': int8
    where its latents reach the cosine gate, else bf16 where the CPU has bf16 units, else fp32), from
    its cache entry (cache_dir, else $RUCLIP_OPENVINO_CACHE, else ~/.cache/ruclip/openvino), built there
    if new. A cached entry is imported without reading the weights or importing NNCF."""
    ov = import_openvino()
    core = ov.Core()
    root = cache_root(cache_dir)
    chosen = None
    if precision == 'auto':
        precision, chosen = _auto(folder, ov, core, root)
    entry, meta = chosen or _entry(folder, precision, ov, core, root)
    config = CLIPConfig.from_file(os.path.join(folder, 'config.json'))
    try:
        image, text, blobs = _import(core, entry, precision)
    except (RuntimeError, ValueError):  # a blob this OpenVINO cannot read (a damaged file): build it again
        meta = _build(folder, precision, core, entry, meta['weights_sha256'], replace=True)
        image, text, blobs = _import(core, entry, precision)
    cosine = meta.get('int8_cosine')
    if warn_int8 and cosine is not None and cosine < _gate():
        warnings.warn(f'int8 latents of {folder} reach a cosine of only {cosine:.4f} to fp32 ones (under '
                      f'{_gate()}); consider dtype=torch.float32 or bf16', RuntimeWarning, stacklevel=3)
    return OpenVINOCLIP(config, image, text, dict(meta, folder=entry), blobs).eval()


def auto_precision(folder: str, cache_dir: Optional[str] = None) -> str:
    """The precision 'auto' takes for the checkpoint in `folder` on this CPU (its int8 entry built if new)."""
    ov = import_openvino()
    return _auto(folder, ov, ov.Core(), cache_root(cache_dir))[0]


def _auto(folder: str, ov, core, root: str):
    """('int8', its (entry, meta)) when int8 reaches the gate, else (auto_fallback, None)."""
    entry = _entry(folder, 'int8', ov, core, root)
    return ('int8', entry) if entry[1]['int8_cosine'] >= _gate() else (auto_fallback(core), None)


def auto_fallback(core) -> str:
    """What precision 'auto' takes when int8 misses its gate: bf16 where the CPU has bf16 units, else fp32."""
    return 'bf16' if 'BF16' in core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES') else 'fp32'


def _entry(folder: str, precision: str, ov, core, root: str):
    """(the entry's folder, its meta), the entry built first if it is absent or incomplete."""
    check_precision(core, precision)
    key, weights = cache_key(folder, precision, ov, core, root)
    entry = os.path.join(root, f'{precision}-{key[:24]}')
    meta = read_meta(entry)
    return entry, meta if meta is not None else _build(folder, precision, core, entry, weights)


def check_precision(core, precision: str) -> None:
    if precision not in HINTS:
        raise ValueError(f'Unknown OpenVINO precision {precision!r}; choose one of {list(HINTS)}')
    capabilities = core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES')
    if precision == 'bf16' and 'BF16' not in capabilities:
        raise ValueError(f"dtype bf16 needs a CPU with bf16 units (AVX512_BF16 or AMX); this one "
                         f"({core.get_property('CPU', 'FULL_DEVICE_NAME')}) has {capabilities}: use "
                         f"torch.float32 or 'int8'")


def _build(folder: str, precision: str, core, entry: str, weights_sha256: str, replace: bool = False) -> dict:
    """Convert (and quantise) the towers, compile them for this CPU and write the entry, whole or not
    at all (into a temporary folder, then renamed); its meta. replace: the entry exists but is damaged."""
    import openvino as ov

    from ..processor import RuCLIPProcessor

    clip = CLIP.from_pretrained(folder)
    size = clip.config.image_resolution
    ids = torch.zeros(2, clip.context_length, dtype=torch.long)  # [2, context_length], eos at 1
    ids[:, 1] = clip.eos_id
    image = _convert(ov, ImageTower(clip), torch.zeros(2, 3, size, size), [-1, 3, size, size], ov.Type.f32)
    text = _convert(ov, TextTower(clip), ids, [-1, -1], ov.Type.i64)
    meta = dict(format=FORMAT, precision=precision, openvino=ov.get_version(), eos_id=clip.eos_id,
                logit_scale=clip.logit_scale.item(), source=os.path.abspath(folder), weights_sha256=weights_sha256,
                weights_digest=weights_digest(clip.state_dict()))
    if precision == 'int8':
        processor = RuCLIPProcessor.from_config(clip.config, os.path.join(folder, 'bpe.model'))
        f32 = {'INFERENCE_PRECISION_HINT': 'f32'}
        image, text, cosines = _int8().quantize_towers(clip, processor, image, text,
                                                       lambda model: core.compile_model(model, 'CPU', f32))
        meta.update(int8_cosine=min(cosines.values()), int8_cosines=cosines)
    properties = {'INFERENCE_PRECISION_HINT': HINTS[precision], 'PERFORMANCE_HINT': 'LATENCY'}
    if replace:
        shutil.rmtree(entry, ignore_errors=True)  # a process still mapping its blobs keeps reading them
    with replacing_folder(entry) as temporary:
        for name, model in ((IMAGE_BLOB, image), (TEXT_BLOB, text)):
            blob = core.compile_model(model, 'CPU', properties).export_model()
            with open(os.path.join(temporary, name), 'wb') as f:
                f.write(blob.getvalue() if hasattr(blob, 'getvalue') else blob)
        with open(os.path.join(temporary, META), 'w', encoding='utf-8') as f:
            json.dump(meta, f, indent=2)
    return meta


def _convert(ov, tower: nn.Module, example: torch.Tensor, shape: list, element_type):
    """torch.jit.trace, then OpenVINO's PyTorch frontend with a dynamic batch (and text length).

    The frontend is called directly: openvino.convert_model traces again (4x slower) and sends OVC's
    usage telemetry, which a library should not do on its users' behalf.
    """
    from openvino._offline_transformations import apply_moc_transformations
    from openvino.frontend import FrontEndManager
    from openvino.frontend.pytorch.ts_decoder import TorchScriptPythonDecoder

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # TracerWarnings on shapes read as ints, and torch.jit's deprecation
        traced = torch.jit.trace(tower.eval(), example, check_trace=False)
    frontend = FrontEndManager().load_by_framework('pytorch')
    decoder = TorchScriptPythonDecoder(traced)  # referenced until convert returns: the frontend calls into it
    model = frontend.load(decoder)
    place = model.get_inputs()[0]
    model.set_partial_shape(place, ov.PartialShape(shape))
    model.set_element_type(place, element_type)
    converted = frontend.convert(model)
    # what convert_model runs next: folds the weights' slices and transposes into constants, without
    # which NNCF leaves most matmuls' weights in fp32 (4 of 11 quantised in the tiny image tower)
    apply_moc_transformations(converted, cf=False, smart_reshape=True)
    return converted


def _import(core, entry: str, precision: str):
    """The entry's two compiled models, imported at once in two threads, each from its blob mapped
    into memory rather than read into a copy, and the maps, which must outlive them.

    OpenVINO lays most weights out anew as it imports, and reads the rest where they lie in the map;
    once imported, the map's pages are handed back (they are read again from the file if needed). The
    map is private: nothing reaches the file. Blobs are never written in place (a rebuilt entry
    replaces them by rename), so a map stays valid for as long as the model lives.
    """
    import mmap

    import numpy as np
    import openvino as ov

    properties = {'INFERENCE_PRECISION_HINT': HINTS[precision], 'PERFORMANCE_HINT': 'LATENCY'}

    def imported(name: str):
        with open(os.path.join(entry, name), 'rb') as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)  # ValueError for an empty file
        blob = np.frombuffer(mapped, dtype=np.uint8)
        compiled = core.import_model(ov.Tensor(blob, shared_memory=True), 'CPU', properties)
        if hasattr(mapped, 'madvise') and hasattr(mmap, 'MADV_DONTNEED'):
            mapped.madvise(mmap.MADV_DONTNEED)
        return compiled, (mapped, blob)

    with ThreadPoolExecutor(2) as pool:
        (image, image_blob), (text, text_blob) = pool.map(imported, (IMAGE_BLOB, TEXT_BLOB))
    return image, text, (image_blob, text_blob)


def _int8():
    from . import _int8
    return _int8


def _gate() -> float:
    return _int8().MIN_COSINE
