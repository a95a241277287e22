"""Cache entries of the OpenVINO backend: where they live, what their key covers, and whether one is whole.

An entry is a folder <root>/<precision>-<key> holding image.blob, text.blob (compiled models) and
meta.json, written into a temporary folder renamed into place, so an entry is whole or absent; one
without meta.json or a blob (removed by hand) is built again. Blobs are never rewritten in place: a
loaded model maps its blobs, and a rebuilt entry replaces the files.
"""
import hashlib
import json
import os
import re
from typing import Optional, Tuple

from .. import __version__  # part of the key: a new ruclip may convert or quantise differently
from .._outputs import atomic_open
from .._weights import WEIGHT_FILES

CACHE_ENV = 'RUCLIP_OPENVINO_CACHE'  # where entries go; default ~/.cache/ruclip/openvino
FORMAT = 3  # of an entry; part of its key (2: meta.json holds weights_sha256; 3: and weights_digest)
IMAGE_BLOB, TEXT_BLOB, META = 'image.blob', 'text.blob', 'meta.json'


def cache_root(cache_dir: Optional[str] = None) -> str:
    if cache_dir is not None:
        return os.fspath(cache_dir)
    if os.environ.get(CACHE_ENV):
        return os.environ[CACHE_ENV]
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'ruclip', 'openvino')


def cache_key(folder: str, precision: str, ov, core, root: str) -> Tuple[str, str]:
    """(key, the weights' sha256): the key is the sha256 of what the compiled towers depend on:
    config.json, the weights, the precision, the ruclip, OpenVINO (NNCF for int8) versions and the CPU
    (a compiled model is made for its instruction set)."""
    with open(os.path.join(folder, 'config.json'), 'rb') as f:
        config = hashlib.sha256(f.read()).hexdigest()
    weights = next(os.path.join(folder, name) for name in WEIGHT_FILES if os.path.isfile(os.path.join(folder, name)))
    weights = weights_digest(weights, root)
    parts = dict(format=FORMAT, ruclip=__version__, config=config, weights=weights,
                 precision=precision, openvino=ov.get_version(), cpu=core.get_property('CPU', 'FULL_DEVICE_NAME'),
                 capabilities=sorted(core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES')),
                 nncf=_version('nncf') if precision == 'int8' else None)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest(), weights


def weights_digest(path: str, root: str) -> str:
    """The weights' sha256: a Hugging Face cache blob is named by it; else it is computed (~1 GB/s) and
    kept in root/digests under the file's path, size and mtime, so an unchanged file is read once."""
    real = os.path.realpath(path)
    if re.fullmatch(r'[0-9a-f]{64}', os.path.basename(real)):
        return os.path.basename(real)
    stat = os.stat(real)
    stamp = f'{real}|{stat.st_size}|{stat.st_mtime_ns}'.encode()
    memo = os.path.join(root, 'digests', hashlib.sha256(stamp).hexdigest())
    try:
        with open(memo, encoding='ascii') as f:
            return f.read().strip()
    except OSError:
        pass
    digest = hashlib.sha256()
    with open(real, 'rb') as f:
        for block in iter(lambda: f.read(1 << 24), b''):
            digest.update(block)
    os.makedirs(os.path.dirname(memo), exist_ok=True)
    with atomic_open(memo, 'w', encoding='ascii') as f:
        f.write(digest.hexdigest())
    return digest.hexdigest()


META_KEYS = ('format', 'precision', 'eos_id', 'logit_scale', 'weights_sha256', 'weights_digest')


def read_meta(entry: str) -> Optional[dict]:
    """An entry's meta.json, or None if the entry is absent, incomplete or its meta.json damaged."""
    try:
        with open(os.path.join(entry, META), encoding='utf-8') as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    keys = META_KEYS + (('int8_cosine',) if isinstance(meta, dict) and meta.get('precision') == 'int8' else ())
    if not isinstance(meta, dict) or any(key not in meta for key in keys):
        return None
    return meta if all(os.path.isfile(os.path.join(entry, name)) for name in (IMAGE_BLOB, TEXT_BLOB)) else None



def _version(package: str) -> Optional[str]:
    """The installed version, read without importing the package (nncf takes seconds to import)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(package)
    except PackageNotFoundError:
        return None
