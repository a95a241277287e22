"""Which model made an index's latents: a fingerprint of its config, weights, backend, dtype and
preprocessing.

Latents from two different models (or one model in two dtypes or on two backends, or with another
image size or normalisation) are not comparable, so an index records the fingerprint of the model that filled it
and refuses queries and updates from any other.
"""
import dataclasses
import hashlib
import json
from typing import Optional

SAMPLED_BYTES = 4096  # from the start and the end of each weight tensor
OPTION_DTYPES = {'float32': 'fp32', 'bfloat16': 'bf16', 'float16': 'fp16'}  # a recorded dtype as --dtype takes it


def model_identity(predictor, name: Optional[str] = None) -> dict:
    """{name, fingerprint, embed_dim, backend, dtype, image_size, mean, std} of the predictor's model.

    fingerprint: blake2b of the config, the backend and dtype, the preprocessing and, for every weight
    tensor, its name, shape and first and last SAMPLED_BYTES bytes: any retrained or other checkpoint
    differs, at the cost of reading a few MB. A model on another backend (OpenVINO, whose weights are
    compiled into its runtime) is told apart by its precision ('fp32', 'bf16', 'int8') and its weights
    file's sha256 instead, so latents of two backends or precisions are never mixed in one index.
    name: how the user calls the model (a name of ruclip.MODELS or a folder), recorded for messages
    and as the model `ruclip search` loads by default.
    """
    clip, processor = predictor.clip_model, predictor.clip_processor
    config = dataclasses.asdict(clip.config)
    backend = getattr(clip, 'backend', 'torch')
    described = dict(config=config, dtype=str(clip.dtype).replace('torch.', ''), image_size=processor.image_size,
                     mean=[float(v) for v in processor.mean], std=[float(v) for v in processor.std])
    if backend != 'torch':  # (a PyTorch model's description is as it was before there were backends)
        described.update(backend=backend, dtype=clip.precision, weights_sha256=clip.weights_sha256)
    digest = hashlib.blake2b(json.dumps(described, sort_keys=True).encode(), digest_size=16)
    for key, tensor in clip.state_dict().items():
        raw = tensor.detach().reshape(-1).contiguous().cpu()
        head = raw[:SAMPLED_BYTES // raw.element_size()]
        tail = raw[-(SAMPLED_BYTES // raw.element_size()):]
        digest.update(f'{key}{list(tensor.shape)}'.encode())
        digest.update(_tensor_bytes(head))
        digest.update(_tensor_bytes(tail))
    return dict(name=name or 'unnamed model', fingerprint=digest.hexdigest(), embed_dim=config['embed_dim'],
                backend=backend, dtype=described['dtype'], image_size=described['image_size'],
                mean=described['mean'], std=described['std'])


def _tensor_bytes(tensor) -> bytes:
    import torch
    return tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b''


def check_same_model(recorded: dict, given: dict, index_path: str) -> None:
    """Raise ValueError naming both models unless `given` is the model `recorded` in the index."""
    if recorded['fingerprint'] == given['fingerprint']:
        return
    recorded, given = (dict(identity, backend=identity.get('backend', 'torch')) for identity in (recorded, given))
    keys = ('embed_dim', 'backend', 'dtype', 'image_size', 'mean', 'std')
    differences = [key for key in keys if recorded[key] != given[key]]
    detail = ', '.join(f'{key} {recorded[key]} vs {given[key]}' for key in differences) or 'other weights'
    raise ValueError(f"index {index_path} was built with the model {recorded['name']!r} "
                     f"({recorded['backend']} {recorded['dtype']}, fingerprint {recorded['fingerprint'][:12]}), not "
                     f"with {given['name']!r} ({given['backend']} {given['dtype']}, fingerprint "
                     f"{given['fingerprint'][:12]}; {detail}): query it with --model {recorded['name']} --backend "
                     f"{recorded['backend']} --dtype {OPTION_DTYPES.get(recorded['dtype'], recorded['dtype'])} or "
                     f"build a new index for this model")
