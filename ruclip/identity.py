"""Which model made a set of latents: one identity record, read by every file derived from latents.

Latents from two checkpoints, or from one checkpoint on two backends, in two precisions or with
other preprocessing (image size, normalisation, JPEG draft decoding and its policy), are not comparable. A
Predictor carries the ModelIdentity of what it computes (`predictor.identity`); the search index,
the shards' manifest, the evaluation feature cache and imported latents record it and are checked
against it with check_same_model, so no derived file is ever filled by two models.

The fingerprint covers the config, the tokenizer (its vocabulary and merges), the weights (every
tensor's name, shape and first and last SAMPLED_BYTES bytes: any retrained or other checkpoint
differs, for reading a few MB), the backend and precision, and the preprocessing. An OpenVINO
model's weights are digested the same way from the PyTorch model it was converted from (recorded
in its cache entry), so the two backends differ only by their backend and precision fields.
"""
import dataclasses
import hashlib
import json
from typing import Mapping, Optional, Tuple, Union

SAMPLED_BYTES = 4096  # from the start and the end of each weight tensor
FORMAT = 2  # of the fingerprint: 1 was the search index's own (no tokenizer, no draft decoding)
DRAFT_POLICY_1 = 'sides>=1x,scale>=1/4'  # jpeg_draft before the policy was recorded: sides at least the input side
OPTION_DTYPES = {'float32': 'fp32', 'bfloat16': 'bf16', 'float16': 'fp16'}  # a recorded dtype as --dtype takes it


@dataclasses.dataclass(frozen=True)
class ModelIdentity:
    """What made a set of latents. Two identities are equal when their fingerprints are (the name
    is how the user called the model, kept for messages and as the model to load again).

    backend: 'torch' or 'openvino'; dtype: the torch dtype's name ('float32', 'bfloat16',
    'float16') or OpenVINO's precision ('fp32', 'bf16', 'int8'); image_size, mean, std: the image
    transform; jpeg_draft: JPEG files decoded at a reduced scale (Predictor(jpeg_draft=True));
    draft_policy: how far they are reduced (ruclip.image.JPEG_DRAFT_POLICY when jpeg_draft, else
    ''); a record from before the policy was named reads as DRAFT_POLICY_1, so an index filled under
    the first policy is never filled further under another.
    """
    fingerprint: str
    embed_dim: int
    backend: str
    dtype: str
    image_size: int
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    jpeg_draft: bool = False
    draft_policy: str = ''
    name: str = dataclasses.field(default='unnamed model', compare=False)

    def to_dict(self) -> dict:
        """A JSON-ready dict; ModelIdentity.from_dict takes it back. draft_policy only with jpeg_draft:
        exact decoding records what it recorded before the policy was named (manifests compare dicts)."""
        recorded = dict(dataclasses.asdict(self), mean=list(self.mean), std=list(self.std), format=FORMAT)
        if not self.jpeg_draft:
            del recorded['draft_policy']
        return recorded

    @classmethod
    def from_dict(cls, recorded: Mapping) -> 'ModelIdentity':
        """The identity a file recorded. A record of an earlier format (or a damaged one) gives an
        identity that equals no model's, so the file is refused or rebuilt, never trusted."""
        fingerprint = str(recorded.get('fingerprint', ''))
        if recorded.get('format') != FORMAT:
            fingerprint = f'format-{recorded.get("format", 1)}:{fingerprint}'
        return cls(fingerprint=fingerprint, embed_dim=int(recorded.get('embed_dim', 0)),
                   backend=str(recorded.get('backend', 'torch')), dtype=str(recorded.get('dtype', '?')),
                   image_size=int(recorded.get('image_size', 0)),
                   mean=tuple(float(v) for v in recorded.get('mean', ())),
                   std=tuple(float(v) for v in recorded.get('std', ())),
                   jpeg_draft=bool(recorded.get('jpeg_draft', False)),
                   draft_policy=str(recorded.get('draft_policy', DRAFT_POLICY_1 if recorded.get('jpeg_draft') else '')),
                   name=str(recorded.get('name', 'unnamed model')))

    def describe(self) -> str:
        """'NAME (backend dtype[, JPEG draft], fingerprint 0123456789ab)', for messages."""
        draft = f', JPEG draft {self.draft_policy}' if self.jpeg_draft else ''
        return f'{self.name!r} ({self.backend} {self.dtype}{draft}, fingerprint {self.fingerprint[:12]})'

    def differences(self, other: 'ModelIdentity') -> str:
        """The fields that differ, as 'field this vs other, ...'; 'other weights or tokenizer' when
        only the fingerprint does."""
        keys = ('embed_dim', 'backend', 'dtype', 'image_size', 'mean', 'std', 'jpeg_draft')
        differing = [f'{key} {getattr(self, key)} vs {getattr(other, key)}' for key in keys
                     if getattr(self, key) != getattr(other, key)]
        if self.jpeg_draft and other.jpeg_draft and self.draft_policy != other.draft_policy:
            differing.append(f'draft_policy {self.draft_policy!r} vs {other.draft_policy!r}')
        if any(identity.fingerprint.startswith('format-') for identity in (self, other)):
            differing.append('one was recorded by an earlier ruclip')
        return ', '.join(differing) or 'other weights or tokenizer'


def model_identity(clip, processor, *, jpeg_draft: bool = False, name: Optional[str] = None,
                   weights: Optional[str] = None, tokenizer: Optional[str] = None) -> ModelIdentity:
    """The identity of the latents `clip` (a ruclip.CLIP or an OpenVINO model) computes with
    `processor`'s tokenizer and image transform. name: how the user calls the model; by default
    what ruclip.load was given (clip.name_or_path). weights, tokenizer: weights_digest(clip.state_dict())
    and tokenizer_digest(processor.tokenizer), when already computed."""
    config = dataclasses.asdict(clip.config)
    backend = getattr(clip, 'backend', 'torch')
    dtype = clip.precision if backend != 'torch' else str(clip.dtype).removeprefix('torch.')
    preprocessing = dict(image_size=int(processor.image_size), mean=tuple(float(v) for v in processor.mean),
                         std=tuple(float(v) for v in processor.std), jpeg_draft=bool(jpeg_draft))
    if jpeg_draft:  # only then: the fingerprints of exact decoding stay those recorded before the policy was named
        from .image import JPEG_DRAFT_POLICY
        preprocessing['draft_policy'] = JPEG_DRAFT_POLICY
    if weights is None:
        weights = clip.weights_digest if backend != 'torch' else weights_digest(clip.state_dict())
    if tokenizer is None:
        tokenizer = tokenizer_digest(processor.tokenizer)
    described = dict(format=FORMAT, config=config, backend=backend, dtype=dtype, weights=weights,
                     tokenizer=tokenizer, **preprocessing)
    fingerprint = hashlib.blake2b(json.dumps(described, sort_keys=True).encode(), digest_size=16).hexdigest()
    return ModelIdentity(fingerprint=fingerprint, embed_dim=config['embed_dim'], backend=backend, dtype=dtype,
                         name=name or getattr(clip, 'name_or_path', None) or 'unnamed model', **preprocessing)


def weights_digest(state_dict: Mapping) -> str:
    """blake2b of every tensor's name, shape, dtype and first and last SAMPLED_BYTES bytes."""
    digest = hashlib.blake2b(digest_size=16)
    for key, tensor in state_dict.items():
        raw = tensor.detach().reshape(-1)  # on its device: only the sampled bytes are copied to the CPU
        step = max(1, SAMPLED_BYTES // raw.element_size())
        digest.update(f'{key}{list(tensor.shape)}{raw.dtype}'.encode())
        digest.update(_tensor_bytes(raw[:step]))
        digest.update(_tensor_bytes(raw[-step:]))
    return digest.hexdigest()


def tokenizer_digest(tokenizer) -> str:
    """blake2b of a BPETokenizer's vocabulary, merges and special ids."""
    described = [tokenizer.vocab(), tokenizer.merges,
                 [tokenizer.unk_id, tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id]]
    return hashlib.blake2b(json.dumps(described, ensure_ascii=False).encode(), digest_size=16).hexdigest()


def _tensor_bytes(tensor) -> bytes:
    import torch
    return tensor.contiguous().cpu().view(torch.uint8).numpy().tobytes() if tensor.numel() else b''


Recorded = Union[ModelIdentity, Mapping]


def check_same_model(recorded: Recorded, given: Recorded, what: str) -> None:
    """Raise ValueError naming both identities unless `given` made the latents `recorded` in `what`
    (a file, as the user would find it)."""
    recorded, given = (identity if isinstance(identity, ModelIdentity) else ModelIdentity.from_dict(identity)
                       for identity in (recorded, given))
    if recorded == given:
        return
    decoding = ''
    if recorded.jpeg_draft != given.jpeg_draft:
        decoding = (' with JPEG draft decoding (the command line\'s default; Predictor(..., jpeg_draft=True))'
                    if recorded.jpeg_draft else ' with exact decoding (--exact-decode; Predictor\'s default)')
    raise ValueError(f'{what} holds latents of the model {recorded.describe()}, not of {given.describe()} '
                     f'({recorded.differences(given)}): use --model {recorded.name} --backend {recorded.backend} '
                     f'--dtype {OPTION_DTYPES.get(recorded.dtype, recorded.dtype)}{decoding}, or make a new one '
                     f'for this model')


def dual_encoder_identity(*, name: str, family: str, config: Mapping, state_dict: Mapping, tokenizer: str,
                          dtype: str, image_size: int, mean, std, embed_dim: int) -> ModelIdentity:
    """The identity of a dual encoder that is not RuCLIP (a transformers CLIPModel, SiglipModel or
    AltCLIPModel, an open_clip model) evaluated beside it, fingerprinted as model_identity does a
    RuCLIP model: family (the library and class), config, weights_digest of the weights, a digest
    of the tokenizer (tokenizer), precision and preprocessing."""
    preprocessing = dict(image_size=int(image_size), mean=tuple(float(v) for v in mean),
                         std=tuple(float(v) for v in std), jpeg_draft=False)
    described = dict(format=FORMAT, family=family, config=config, backend='torch', dtype=dtype,
                     weights=weights_digest(state_dict), tokenizer=tokenizer, **preprocessing)
    text = json.dumps(described, sort_keys=True, default=str)
    fingerprint = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    return ModelIdentity(fingerprint=fingerprint, embed_dim=int(embed_dim), backend='torch', dtype=dtype, name=name,
                         **preprocessing)
