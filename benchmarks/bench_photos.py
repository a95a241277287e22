"""A phone-photo library through ruclip (issue 22): decoding 12 MP JPEGs, indexing them, what draft
decoding changes, and the cosines of near-duplicates, in one run.

    python benchmarks/bench_photos.py                          # everything, 200 photos
    python benchmarks/bench_photos.py --photos 48 --sections decode,index

decode:     per image, plain Pillow (full decode, convert, the model's crop + resize: what rclip and
            clip-retrieval do) against ruclip's draft decode (both sides >= 2x the model's input) and
            simplejpeg's scaled decode to the same floor; then decoding threads against processes,
            1 and 2 (and up to the usable cores) of each, images/s.
quality:    per-image cosine of draft to exact latents, and the overlap of the top 10 when each photo's
            exact latent queries the others, draft against exact; with the random-weight model these
            are a lower bound on nothing: real weights must be measured (--model NAME).
index:      ImageIndex.update (what `ruclip index` runs) with draft decoding (the default) and with
            --exact-decode, against the image tower alone on already-decoded pixel_values, images/s,
            at one precision (--dtype, torch backend), alternating, best round each.
duplicates: the threshold ruclip duplicates measures for the model on an index of 12 drawn photos (their
            re-saves, half sizes, burst frames against different photos), with what it measured.
The model: a full-size base-patch32-384 with random weights (none are downloadable here), or --model.
"""
import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault('TQDM_DISABLE', '1')

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / 'tests'))
sys.path.insert(2, str(ROOT / 'benchmarks'))

import ruclip  # noqa: E402
from ruclip._device import cpu_class  # noqa: E402
from helpers.photos import PHONE_12MP, photo_like, write_photo  # noqa: E402
from ruclip.image import DRAFT_SIDE_FACTOR, ImageTransform, open_image  # noqa: E402

SIZE = 384  # base-patch32-384's input side
TRANSFORM = ImageTransform(SIZE, [0.481, 0.458, 0.408], [0.269, 0.261, 0.276])


def machine() -> str:
    from ruclip._batches import usable_cores
    model = next((line.split(':', 1)[1].strip() for line in open('/proc/cpuinfo') if line.startswith('model name')),
                 platform.processor())
    return (f'{model}, {usable_cores()} usable cores, CPU class {cpu_class()}, torch {torch.__version__}, '
            f'load average {os.getloadavg()[0]:.1f} at start')


def photos(folder: Path, count: int) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(count):
        path = folder / f'IMG_{i:04d}.jpg'
        if not path.is_file():
            write_photo(path, *PHONE_12MP, seed=i)
        files.append(str(path))
    return files


def checkpoint(folder: Path, name: str) -> str:
    if name:
        return name
    from bench import ARCHITECTURES
    from helpers.checkpoints import write_checkpoint
    target = folder / 'ruclip-vit-base-patch32-384'
    if not (target / 'pytorch_model.bin').is_file():
        bpe = ROOT / 'tests' / 'data' / 'bpe_600.model'
        write_checkpoint(target, ARCHITECTURES['ruclip-vit-base-patch32-384'], bpe)
    return str(target)


# ---- decode --------------------------------------------------------------------------------------
def plain_pillow(path):
    from PIL import Image
    with Image.open(path) as image:
        return TRANSFORM(image.convert('RGB'))


def ours(path):
    return TRANSFORM(open_image(path, draft_size=DRAFT_SIDE_FACTOR * SIZE))


def simplejpeg_decode(path):
    import simplejpeg
    from PIL import Image
    with open(path, 'rb') as file:
        pixels = simplejpeg.decode_jpeg(file.read(), colorspace='RGB', min_height=DRAFT_SIDE_FACTOR * SIZE,
                                        min_width=DRAFT_SIDE_FACTOR * SIZE)
    return TRANSFORM(Image.fromarray(pixels))


def _shape(path):  # a process worker's job: decode and transform, send back only the shape
    return tuple(ours(path).shape)


def bench_decode(files, rounds: int) -> dict:
    ways = {'plain Pillow full decode + resize': plain_pillow, 'ruclip draft decode': ours}
    if importlib.util.find_spec('simplejpeg'):
        ways['simplejpeg scaled decode'] = simplejpeg_decode
    sample = files[:min(len(files), 16)]
    best = {name: float('inf') for name in ways}
    for _ in range(rounds):  # alternating, best round each: the machine is shared
        for name, way in ways.items():
            start = time.perf_counter()
            for path in sample:
                way(path)
            best[name] = min(best[name], (time.perf_counter() - start) / len(sample))
    from ruclip._batches import usable_cores
    pools = {}
    for workers in sorted({1, 2, usable_cores()}):
        for kind, pool_type in (('threads', ThreadPoolExecutor), ('processes', ProcessPoolExecutor)):
            with pool_type(workers) as pool:
                list(pool.map(_shape, sample[:workers]))  # started and warm
                start = time.perf_counter()
                list(pool.map(_shape, sample))
                pools[f'{workers} {kind}'] = len(sample) / (time.perf_counter() - start)
    return dict(ms_per_image={name: round(1000 * seconds, 1) for name, seconds in best.items()},
                speedup_vs_plain={name: round(best['plain Pillow full decode + resize'] / seconds, 2)
                                  for name, seconds in best.items()},
                images_per_s_by_pool={name: round(rate, 2) for name, rate in pools.items()}, images=len(sample))


# ---- quality -------------------------------------------------------------------------------------
def bench_quality(files, model: str, dtype: str) -> dict:
    clip, processor = ruclip.load(model, backend='torch', dtype=dtype)
    exact = ruclip.Predictor(clip, processor, quiet=True).get_image_latents(files)
    drafted = ruclip.Predictor(clip, processor, quiet=True, jpeg_draft=True).get_image_latents(files)
    cosines = (exact * drafted).sum(1)
    top = min(10, len(files) - 1)  # each photo's exact latent queries the others
    overlaps = [len(set((exact @ exact[q]).topk(top + 1).indices.tolist()) - {q} &
                    set((drafted @ exact[q]).topk(top + 1).indices.tolist()) - {q}) / top for q in range(len(files))]
    others = exact @ exact.T - 2 * torch.eye(len(files))
    pixels = [torch.nn.functional.cosine_similarity(TRANSFORM(open_image(f)).flatten(), ours(f).flatten(), dim=0)
              for f in files[:8]]
    return dict(images=len(files), latent_cosine_min=round(float(cosines.min()), 6),
                latent_cosine_mean=round(float(cosines.mean()), 6),
                nearest_other_photo_cosine_mean=round(float(others.max(1).values.mean()), 6),
                top10_overlap_mean=round(float(np.mean(overlaps)), 4), top10_overlap_min=min(overlaps),
                pixel_cosine_min=round(float(min(pixels)), 5))


# ---- index ---------------------------------------------------------------------------------------
def bench_index(files, model: str, dtype: str, workdir: Path, rounds: int) -> dict:
    from ruclip.search import ImageIndex
    clip, processor = ruclip.load(model, backend='torch', dtype=dtype)
    predictors = {draft: ruclip.Predictor(clip, processor, quiet=True, jpeg_draft=draft) for draft in (True, False)}
    pixel_values = torch.stack([TRANSFORM(open_image(path, draft_size=DRAFT_SIDE_FACTOR * SIZE)) for path in files])
    batch = predictors[True].batch_size

    def tower():
        with torch.inference_mode():
            for start in range(0, len(pixel_values), batch):
                clip.encode_image(pixel_values[start:start + batch])

    def index(draft):
        def run():
            path = workdir / f'bench-{draft}.index'
            for leftover in workdir.glob(f'bench-{draft}.index*'):
                if leftover.is_dir():
                    import shutil
                    shutil.rmtree(leftover)
                else:
                    leftover.unlink()
            report = ImageIndex(path, predictors[draft]).update([str(Path(files[0]).parent)])
            assert report.embedded == len(files), report
        return run

    ways = {'tower alone on decoded pixel_values': tower, 'ruclip index (draft decode, default)': index(True),
            'ruclip index --exact-decode': index(False)}
    best = {name: float('inf') for name in ways}
    for _ in range(rounds):
        for name, way in ways.items():
            start = time.perf_counter()
            way()
            best[name] = min(best[name], time.perf_counter() - start)
    rates = {name: len(files) / seconds for name, seconds in best.items()}
    tower_rate = rates['tower alone on decoded pixel_values']
    return dict(images=len(files), dtype=dtype, batch_size=batch, num_workers=predictors[True].num_workers,
                images_per_s={name: round(rate, 2) for name, rate in rates.items()},
                ratio_to_tower={name: round(rate / tower_rate, 3) for name, rate in rates.items()})


# ---- duplicates ----------------------------------------------------------------------------------
def bench_duplicates(model: str, dtype: str, workdir: Path, count: int = 12) -> dict:
    """The duplicate threshold `ruclip duplicates` measures for the model (ruclip.search.duplicate_calibration)
    on an index of `count` drawn 1024x768 photos, and the highest cosine between two of them (all different)."""
    from ruclip.search import ImageIndex
    from ruclip.search.duplicate_calibration import duplicate_threshold, nearest_other
    clip, processor = ruclip.load(model, backend='torch', dtype=dtype)
    predictor = ruclip.Predictor(clip, processor, quiet=True, jpeg_draft=True)  # as `ruclip index` fills an index
    folder = workdir / 'duplicates'
    folder.mkdir(parents=True, exist_ok=True)
    for seed in range(count):
        if not (folder / f'{seed}.jpg').is_file():
            photo_like(1024, 768, seed=500 + seed).save(folder / f'{seed}.jpg', quality=90)
    index_path = folder / f'{Path(model).name}-{dtype}.index'
    if index_path.exists():
        index_path.unlink()  # a fresh index: the threshold is measured, not read back
    with ImageIndex(index_path, predictor) as index:
        index.update([str(folder / f'{seed}.jpg') for seed in range(count)])
        start = time.perf_counter()
        threshold = duplicate_threshold(index)
        seconds = time.perf_counter() - start
        stored = index._latents()
        different = nearest_other(stored.latents, [None] * len(stored.ids))
    return dict(photos=count, threshold=threshold.value, explanation=threshold.explanation,
                measured=threshold.measured, measuring_s=round(seconds, 2),
                different_photos_max_cosine=round(float(different.max()), 6))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--photos', type=int, default=200, help='12 MP JPEGs to index (default 200)')
    parser.add_argument('--sections', default='decode,quality,index,duplicates')
    parser.add_argument('--model', default=None, help='a checkpoint (default: base-patch32-384, random weights)')
    parser.add_argument('--dtype', default='bf16' if cpu_class() in ('AMX', 'AVX512-BF16') else 'fp32',
                        help='default: bf16 where the CPU computes it natively (AMX, AVX512-BF16), else fp32')
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--workdir', default=os.path.join(tempfile.gettempdir(), 'ruclip-bench-photos'))
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    sections = args.sections.split(',')
    print(machine(), flush=True)
    files = photos(workdir / 'photos', args.photos)
    model = checkpoint(workdir, args.model)
    results = dict(machine=machine(), photos=f'{args.photos} photo-like {PHONE_12MP[0]}x{PHONE_12MP[1]} JPEGs q90')
    if 'decode' in sections:
        results['decode'] = bench_decode(files, args.rounds)
        print(json.dumps(results['decode'], ensure_ascii=False), flush=True)
    if 'quality' in sections:
        results['quality'] = bench_quality(files[:min(len(files), 48)], model, args.dtype)
        print(json.dumps(results['quality'], ensure_ascii=False), flush=True)
    if 'index' in sections:
        results['index'] = bench_index(files, model, args.dtype, workdir, args.rounds)
        print(json.dumps(results['index'], ensure_ascii=False), flush=True)
    if 'duplicates' in sections:
        results['duplicates'] = bench_duplicates(model, args.dtype, workdir)
        print(json.dumps(results['duplicates'], ensure_ascii=False), flush=True)
    print(json.dumps(results, ensure_ascii=False, indent=2))


if __name__ == '__main__':
    main()
