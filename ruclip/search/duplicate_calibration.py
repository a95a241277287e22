"""The near-duplicate threshold of an index, measured with the index's own model on its own photos.

A fixed cosine does not carry from one model to another (each spreads its latents differently), so
`ruclip duplicates` measures it once per index and model:

1. The sample: up to SAMPLE_PHOTOS of the index's photos, spread over it (every k-th in path order,
   k = photos // SAMPLE_PHOTOS, then the ones after them), skipping files that cannot be read or
   that changed since they were indexed, and copies of a photo already taken (same content hash);
   at most SAMPLE_TRIES files are tried.
2. Drawn variants of each (drawn_variants), made in memory from its exact decode and embedded by the
   index's Predictor (Predictor.embed_images: the path that filled the index, JPEG draft decoding
   included) as JPEG files would be:
   - re-save: the photo saved again as a JPEG of quality RESAVE_QUALITY;
   - half size: both sides halved (Lanczos), saved at quality VARIANT_QUALITY;
   - burst frame: the photo shifted by BURST_SHIFT of its width and height (that strip cut from the
     left and top edges, the rest kept at its size) and BURST_LIGHT times as bright, saved at
     quality VARIANT_QUALITY: what the next frame of a burst differs by.
   Each variant's cosine to its original's STORED latent is recorded.
3. Different photos: each indexed photo's cosine to its nearest other photo, from the stored
   latents, exact copies (same content hash) left out. These include the library's own
   near-duplicates, so their highest value says nothing about the model; their median does (a photo
   of a library is rarely a near-duplicate of another).

The rule (choose_threshold): threshold = 1 - MARGIN x (1 - lowest re-encoding cosine), the
re-encodings being the re-saves and half sizes: a pair groups when it is at most MARGIN times as far
apart as the farthest re-encoding drawn (the sample's worst is not the library's). When that would
link at least half of the index's photos to another one (the median nearest-other cosine is at or
above it) the model does not tell re-encodings from different photos here, and the threshold is
raised to 1.0: only identical latents and exact copies group. Burst frames do not set the
threshold; the explanation says how many of them reach it.

Stored in the index (meta key META_KEY) is what needed the model: the cosines of step 2, with the
model's fingerprint, the recipe (RECIPE) and the sample (each photo's id and a digest of its stored
latent). They are reused, without loading the model, while the index's model, the recipe and every
sample photo's stored latent are the same, unless the sample was short of SAMPLE_PHOTOS and the
index has since doubled. Step 3 needs no model and is computed on each call from the index as it is.
Nothing could be measured (every sample file unreadable or changed): FALLBACK_THRESHOLD, not stored.
An index of fewer than 2 photos has nothing to compare (FALLBACK_THRESHOLD, the model not loaded).
An index opened read-only, or whose file cannot be written, is measured on every call (a warning).

Cost of a measurement: loading the model, then per sample photo a full decode and three JPEG encodes
at its size, and 3 x SAMPLE_PHOTOS pictures embedded (about 14 s for 16 12 MP JPEGs with
base-patch32-384 in bf16 on 2 shared cores); step 3 is n^2 dot products, as finding the groups is.
"""
import hashlib
import io
import json
import logging
import os
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from . import database

logger = logging.getLogger('ruclip')
SAMPLE_PHOTOS = 16
SAMPLE_TRIES = 4 * SAMPLE_PHOTOS
RESAVE_QUALITY = 60
VARIANT_QUALITY = 90  # what a phone or an editor saves at
BURST_SHIFT = 0.03
BURST_LIGHT = 1.05
MARGIN = 2.0
RECIPE = (f'resave q{RESAVE_QUALITY}; half q{VARIANT_QUALITY}; burst shift {BURST_SHIFT} light {BURST_LIGHT} '
          f'q{VARIANT_QUALITY}; sample {SAMPLE_PHOTOS}')
# Measured on drawn photos with two models of random weights (benchmarks/bench_photos.py --sections
# duplicates): 0.999 parted re-encodings from different photos for both. Only for when nothing can be measured.
FALLBACK_THRESHOLD = 0.999
META_KEY = 'duplicates_calibration'
BLOCK_FLOATS = 4096 * 4096  # cosines computed at a time for the nearest other photo (64 MB)
VARIANTS = ('re-save', 'half size', 'burst frame')


@dataclass(frozen=True)
class Threshold:
    """The cosine at and above which two photos group, and why that one.

    source: 'measured' (now), 'stored' (measured by an earlier call), 'fallback' or 'given'.
    measured: the numbers it rests on (None when given): sample (photos drawn), photos (indexed),
        lowest cosine of each variant kind to its original, bursts_at_threshold, nearest_median,
        linked (photos whose nearest other photo is at or above the threshold), overlap.
    """
    value: float
    source: str
    explanation: str
    measured: Optional[dict] = None

    def to_dict(self) -> dict:
        return dict(value=self.value, source=self.source, explanation=self.explanation, measured=self.measured)


def choose_threshold(reencodings: Sequence[float], nearest: Sequence[float]) -> Tuple[float, bool]:
    """(threshold, overlap) by the module's rule, from the re-encodings' cosines to their originals and
    each photo's cosine to its nearest other photo; overlap: raised to 1.0."""
    threshold = reencoding_threshold(reencodings)
    overlap = len(nearest) > 0 and float(np.median(nearest)) >= threshold
    return (1.0 if overlap else threshold), overlap


def reencoding_threshold(reencodings: Sequence[float]) -> float:
    """1 - MARGIN x (1 - the lowest of the re-encodings' cosines), at least -1."""
    return max(-1.0, 1.0 - MARGIN * (1.0 - float(min(reencodings))))


def drawn_variants(image) -> Dict[str, bytes]:
    """{kind: JPEG bytes} for each of VARIANTS, drawn from a PIL image as the module's doc says."""
    from PIL import Image, ImageEnhance

    from ..image import to_8bit

    image = to_8bit(image).convert('RGB')
    width, height = image.size
    dx, dy = round(BURST_SHIFT * width), round(BURST_SHIFT * height)
    burst = ImageEnhance.Brightness(image.crop((dx, dy, width, height))).enhance(BURST_LIGHT)
    half = image.resize((max(1, width // 2), max(1, height // 2)), Image.LANCZOS)
    return {'re-save': _jpeg(image, RESAVE_QUALITY), 'half size': _jpeg(half, VARIANT_QUALITY),
            'burst frame': _jpeg(burst, VARIANT_QUALITY)}


def _jpeg(image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, 'JPEG', quality=quality)
    return buffer.getvalue()


def duplicate_threshold(index) -> Threshold:
    """The measured threshold of an ImageIndex: stored, else measured now (loading the index's model)
    and stored when the index can be written (else measured again next time, with a warning).

    Raises:
        ValueError: it has to be measured and the ImageIndex was given no predictor.
    """
    photos = len(index)
    if photos < 2:
        return Threshold(FALLBACK_THRESHOLD, 'fallback', f'the index holds {photos} photo(s): nothing to compare')
    with index._lock:
        stored = index._latents()
        latents, ids = stored.latents, np.asarray(stored.ids)
        rows = index._connection.execute('SELECT id, path, size, mtime_ns, hash FROM images ORDER BY path').fetchall()
        record = _stored(index, photos)
    source = 'stored'
    if record is None:
        record = _measure(index, rows, photos, latents, ids)
        if record is None:
            return Threshold(FALLBACK_THRESHOLD, 'fallback',
                             f'none of the {min(len(rows), SAMPLE_TRIES)} photos tried could be read as they were '
                             f'indexed (gone, unreadable or changed since): {FALLBACK_THRESHOLD}, measured with '
                             f'random-weight models, not with this one; nothing stored')
        source = 'measured'
        _store(index, record)
    digests = {row_id: digest for row_id, _, _, _, digest in rows}
    nearest = nearest_other(latents, [digests.get(int(row_id)) for row_id in ids])
    return _explained(record, nearest, source, photos)


def is_stored(index) -> bool:
    """Whether duplicate_threshold(index) will reuse stored measurements (True) or has to measure (False),
    loading the model, for an index of at least 2 photos."""
    with index._lock:
        return len(index) < 2 or _stored(index, len(index)) is not None


def _explained(record: dict, nearest: np.ndarray, source: str, photos: int) -> Threshold:
    lowest = {kind: min(record['cosines'][kind]) for kind in VARIANTS}
    reencodings = record['cosines']['re-save'] + record['cosines']['half size']
    threshold, overlap = choose_threshold(reencodings, nearest)
    bursts = sum(cosine >= threshold for cosine in record['cosines']['burst frame'])
    linked = int((nearest >= threshold).sum())
    sample = len(record['sample'])
    measured = dict(sample=sample, photos=photos, lowest={kind: round(v, 6) for kind, v in lowest.items()},
                    bursts_at_threshold=bursts, overlap=overlap, linked=linked,
                    nearest_median=round(float(np.median(nearest)), 6) if len(nearest) else None)
    when = 'measured now' if source == 'measured' else 'measured earlier, stored in the index'
    burst_words = 'bursts group' if bursts == sample else 'bursts do not group' if bursts == 0 else \
        f'{bursts} of {sample} burst frames group'
    verdict = (f'the model does not tell re-encodings from different photos here (half the photos have another at '
               f'>= {reencoding_threshold(reencodings):.6f}): raised to 1, only '
               f'identical latents and exact copies group') if overlap else \
        f're-saves and resizes group, {burst_words}'
    median = 'no other photo' if measured['nearest_median'] is None else f'median {measured["nearest_median"]:.6f}'
    explanation = (f'threshold {threshold:.6f} for this index\'s model ({when}, on {sample} of its photos): '
                   f're-saves >= {lowest["re-save"]:.6f}, half sizes >= {lowest["half size"]:.6f}, burst-like frames '
                   f'>= {lowest["burst frame"]:.6f}; nearest other photo: {median}, {linked} of {photos} photos '
                   f'have one at or above the threshold; {verdict}')
    return Threshold(threshold, source, explanation, measured)


def nearest_other(latents: np.ndarray, digests: Sequence[Optional[bytes]]) -> np.ndarray:
    """For each row of latents [n, dim] (unit) that has another row of a different content hash
    (digests[i]; None: unknown, different from all), its highest cosine to such a row."""
    latents = np.asarray(latents, dtype=np.float32)
    n = len(latents)
    codes: Dict[bytes, int] = {}
    code = np.array([codes.setdefault(digest, len(codes)) if digest is not None else -1 - i
                     for i, digest in enumerate(digests)], dtype=np.int64)  # equal for copies; a row equals itself
    nearest = np.full(n, -np.inf, dtype=np.float32)
    rows_per_pass = max(1, BLOCK_FLOATS // max(n, 1))
    for start in range(0, n, rows_per_pass):
        block = latents[start:start + rows_per_pass] @ latents.T  # [rows_per_pass, n]
        block[code[start:start + rows_per_pass, None] == code[None, :]] = -np.inf
        nearest[start:start + rows_per_pass] = block.max(axis=1)
    return nearest[np.isfinite(nearest)]


def _latent_digest(latent: np.ndarray) -> str:
    return hashlib.blake2b(np.asarray(latent, np.float32).tobytes(), digest_size=8).hexdigest()


def _stored(index, photos: int) -> Optional[dict]:
    """The stored measurements when they still hold for the index as it is (the module's doc), else None."""
    record = database.meta(index._connection, META_KEY)
    if not isinstance(record, dict) or record.get('recipe') != RECIPE or \
            record.get('model') != index.model['fingerprint']:
        return None
    if len(record['sample']) < SAMPLE_PHOTOS and photos >= 2 * record['photos']:
        return None
    for row_id, digest in record['sample']:
        row = index._connection.execute('SELECT latent FROM images WHERE id = ?', (row_id,)).fetchone()
        if row is None or _latent_digest(np.frombuffer(row[0], np.float32)) != digest:
            return None
    return record


def _measure(index, rows: list, photos: int, latents: np.ndarray, ids: np.ndarray) -> Optional[dict]:
    """The stored record of the module's steps 1 and 2, or None when no sample photo could be read."""
    from ..image import open_image

    stride = max(1, len(rows) // SAMPLE_PHOTOS)
    order = [position for offset in range(stride) for position in range(offset, len(rows), stride)]
    sample, variants, seen = [], [], set()
    for position in order[:SAMPLE_TRIES]:
        row_id, path, size, mtime_ns, digest = rows[position]
        if digest is not None and digest in seen:
            continue
        try:
            status = os.stat(path)
            if (status.st_size, status.st_mtime_ns) != (size, mtime_ns):
                continue  # changed since it was indexed: its stored latent is of other pixels
            drawn = drawn_variants(open_image(os.fsdecode(path)))
        except (OSError, ValueError) as error:
            logger.debug('duplicate threshold: %s left out of the sample: %s', os.fsdecode(path), error)
            continue
        seen.add(digest)
        sample.append(int(row_id))
        variants.append(drawn)
        if len(sample) == SAMPLE_PHOTOS:
            break
    if not sample:
        return None
    if index._predictor is None and index._source is None:
        raise ValueError(f'the duplicate threshold of index {index.path} is not measured yet, and measuring it needs '
                         f'the index\'s model: give ImageIndex a predictor, or give a threshold')
    embedded = index.predictor.embed_images([drawn[kind] for drawn in variants for kind in VARIANTS], progress=False)
    position_of = {int(row_id): p for p, row_id in enumerate(ids)}
    originals = latents[[position_of[row_id] for row_id in sample]]  # [sample, dim], as stored
    cosines = {kind: [] for kind in VARIANTS}
    for latent, kept in zip(embedded.latents.numpy(), embedded.kept):
        photo, kind = divmod(kept, len(VARIANTS))
        cosines[VARIANTS[kind]].append(float(latent @ originals[photo]))
    if not all(cosines.values()):
        return None
    return dict(recipe=RECIPE, model=index.model['fingerprint'], photos=photos, cosines=cosines,
                sample=[[row_id, _latent_digest(latent)] for row_id, latent in zip(sample, originals)])


def _store(index, record: dict) -> None:
    why = 'it was opened read-only' if index.readonly else database.writable(index.path)
    if why is None:
        try:
            with index._writing() as connection:  # the generation stays: no latent changed
                connection.execute('INSERT OR REPLACE INTO meta VALUES (?, ?)', (META_KEY, json.dumps(record)))
            return
        except database.IndexBusy as error:
            why = str(error)
    logger.warning('index %s: the duplicate threshold was measured but cannot be stored (%s); it is measured '
                   'again next time', index.path, why)
