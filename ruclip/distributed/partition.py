"""The engine-free core: one partition of the input in, that partition's shard files out.

embed_partition(partition_id, inputs, settings) reads the partition's samples, fetches URLs,
embeds images through Predictor.get_image_latents (and captions through get_caption_latents),
and writes the shards (shards.write_partition). It depends on no engine: the local engine loops
over it, a SLURM array task or a Spark executor calls it for one id, and the Ray engine runs
the same embed_samples on batches inside its actors.
"""
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional

import numpy as np

from .inputs import Inputs
from .sample import Sample, fetched
from .shards import write_partition

logger = logging.getLogger('ruclip')
_PREDICTORS: Dict[tuple, object] = {}  # one loaded model per process and settings
_PREDICTORS_LOCK = threading.Lock()


@dataclass(frozen=True)
class Settings:
    """Everything a worker needs besides the inputs; plain values, so it pickles to any engine.

    Attributes:
        model: a name of ruclip.MODELS or a checkpoint folder.
        out: the shards folder.
        partition_count: N, the number of partitions.
        device: where the model runs; None: cuda if available.
        dtype: a torch dtype's name, or with backend 'openvino' its precision ('fp32', 'int8', ...).
        backend: 'torch' or 'openvino'.
        batch_size: images per forward pass; None: picked for the device.
        num_workers: decoding threads; None: one per core, up to 8.
        cache_dir: the Hugging Face cache to load the model from.
        texts: embed captions into text_emb/ too (rows without a caption then fail).
        url_timeout: seconds per URL.
        quiet: no progress bars.
        manifest_digest: set by `prepare` (job.start): the digest every done marker carries.
        model_fingerprint: set by `prepare`: the fingerprint every worker's model must have.
    """
    model: str
    out: str
    partition_count: int
    device: Optional[str] = None
    dtype: str = 'float32'  # a torch dtype's name, or with backend 'openvino' its precision ('fp32', 'int8', ...)
    backend: str = 'torch'
    batch_size: Optional[int] = None
    num_workers: Optional[int] = None
    cache_dir: Optional[str] = None
    texts: bool = False
    url_timeout: float = 10.0
    quiet: bool = True
    jpeg_draft: bool = False  # Predictor's: JPEGs decoded at a reduced scale (the command line's default)
    manifest_digest: str = ''
    model_fingerprint: str = ''  # of the model the manifest records (job.start): every worker's must be it


@dataclass
class Embedded:
    """Rows embedded (metadata dicts, in input order), their latents, and the rows that failed."""
    metadata: List[dict] = field(default_factory=list)
    image_latents: List[np.ndarray] = field(default_factory=list)
    text_latents: List[np.ndarray] = field(default_factory=list)
    failed: List[dict] = field(default_factory=list)

    def extend(self, other: 'Embedded') -> None:
        self.metadata += other.metadata
        self.image_latents += other.image_latents
        self.text_latents += other.text_latents
        self.failed += other.failed

    def arrays(self, embed_dim: int, texts: bool):
        images = np.concatenate(self.image_latents) if self.image_latents else np.zeros((0, embed_dim), np.float32)
        captions = (np.concatenate(self.text_latents) if self.text_latents else
                    np.zeros((0, embed_dim), np.float32)) if texts else None
        return images, captions


def predictor_for(settings: Settings):
    """This process's Predictor for `settings` (loaded once, then reused), checked to be the model
    the run's manifest records (settings.model_fingerprint, once job.start has set it)."""
    import torch

    from ..predictor import Predictor
    from ..pretrained import load

    key = (settings.model, settings.device, settings.backend, settings.dtype, settings.batch_size,
           settings.num_workers, settings.cache_dir, settings.quiet, settings.jpeg_draft)
    with _PREDICTORS_LOCK:
        if key not in _PREDICTORS:
            device = settings.device or ('cuda' if torch.cuda.is_available() else 'cpu')
            clip, processor = load(settings.model, device=device, cache_dir=settings.cache_dir, dtype=settings.dtype,
                                   backend=settings.backend)
            _PREDICTORS[key] = Predictor(clip, processor, device, bs=settings.batch_size, quiet=settings.quiet,
                                         num_workers=settings.num_workers, jpeg_draft=settings.jpeg_draft)
        predictor = _PREDICTORS[key]
    check_worker_model(predictor, settings)
    return predictor


def check_worker_model(predictor, settings: Settings) -> None:
    """ValueError unless the predictor is the model the run's manifest records (a worker whose copy of
    the checkpoint, backend or precision differs would write latents of another model)."""
    identity = predictor.identity
    if settings.model_fingerprint and identity.fingerprint != settings.model_fingerprint:
        raise ValueError(f'this worker\'s model {identity.describe()} is not the one the run\'s manifest in '
                         f'{settings.out} records (fingerprint {settings.model_fingerprint[:12]}): give every '
                         f'worker the same checkpoint, backend and dtype')


def embed_samples(predictor, samples: Iterable[Sample], texts: bool, with_captions: bool) -> Embedded:
    """Embed samples (URLs already fetched) in order; unreadable ones go to `failed` with the reason."""
    result = Embedded()
    candidates: List[Sample] = []

    def fail(sample: Sample, reason: str) -> None:
        result.failed.append(dict(image_path=sample.image_path, key=sample.key, caption=sample.caption,
                                  reason=reason))

    def images():
        for sample in samples:
            if sample.error:
                fail(sample, sample.error)
            elif texts and not (sample.caption or '').strip():
                fail(sample, 'no caption, and captions are embedded (texts)')
            else:
                candidates.append(sample)
                yield sample.image

    embedded = predictor.embed_images(images(), progress=False)
    for index, _, reason in embedded.failures:
        sample = candidates[index]
        fail(sample, reason if sample.image_path in reason else f'{sample.image_path}: {reason}')
    kept = [candidates[index] for index in embedded.kept]
    latents = embedded.latents.numpy()
    result.metadata = [sample.metadata(with_captions) for sample in kept]
    if kept:
        result.image_latents.append(latents)
    if texts and kept:
        result.text_latents.append(predictor.get_caption_latents([s.caption for s in kept]).float().cpu().numpy())
    return result


def embed_partition(partition_id: int, inputs: Inputs, settings: Settings, predictor=None) -> dict:
    """Embed one partition and write its files into settings.out, its done marker last.

    The engine-free core: any engine that can call a function for each partition id (a process, a
    SLURM array task, a Spark executor, a Ray task) runs this.

    Args:
        partition_id: i, from 0 to settings.partition_count - 1.
        inputs: the whole input, as every worker lists it (list_inputs).
        settings: as returned by `prepare`, which set up the folder and the manifest digest.
        predictor (Predictor | None): a Predictor of settings.model to use instead of loading it.

    Returns:
        The partition's done marker: rows, failed, and each file with its size and sha256.

    Raises:
        ValueError: a partition that does not exist, settings not returned by `prepare`, or a
            model other than the manifest's.
    """
    if not settings.manifest_digest:
        raise ValueError('settings has no manifest digest: pass the settings that prepare(inputs, settings) returns')
    if predictor is None:
        predictor = predictor_for(settings)
    else:
        check_worker_model(predictor, settings)
    samples = fetched(inputs.partition_samples(partition_id, settings.partition_count), settings.url_timeout)
    embedded = embed_samples(predictor, samples, settings.texts, inputs.has_captions)
    return write_embedded(partition_id, embedded, settings, predictor.clip_model.config.embed_dim)


def write_embedded(partition_id: int, embedded: Embedded, settings: Settings, embed_dim: int) -> dict:
    images, captions = embedded.arrays(embed_dim, settings.texts)
    if embedded.failed:
        logger.warning('partition %d: left out %d rows (listed in failed/), the first: %s', partition_id,
                       len(embedded.failed), embedded.failed[0]['reason'])
    return write_partition(os.fspath(settings.out), partition_id, settings.partition_count, settings.manifest_digest,
                           embedded.metadata, images, captions, embedded.failed)
