"""Time of `ruclip eval` on a 10,000-image split, against the Predictor call it is built on.

    python benchmarks/eval_split.py                       # ruclip-vit-base-patch32-224, fp32, 10,000 images
    python benchmarks/eval_split.py --dtype bfloat16 --n 2000

Writes n synthetic 320x240 JPEG files in 10 class folders (an ImageFolder), a full-size checkpoint
with random weights (openai-CLIP shapes, as benchmarks/bench.py; the real weights cannot be
downloaded here), then times, in one process:
  baseline  predictor.get_image_latents(files): what a user would write instead;
  zero-shot evaluate_zeroshot(predictor, split, cache_dir=...) with an empty feature cache:
            10 Russian class names x 12 templates, image latents, metrics, written to the cache;
  cached    the same again, image latents read from the cache.
Rounds alternate baseline and zero-shot, best round kept. Accuracy is meaningless here (random
weights); only the time is reported.
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / 'benchmarks'))
sys.path.insert(2, str(ROOT / 'tests'))
sys.path.insert(3, str(ROOT / 'tests' / 'helpers'))

import ruclip  # noqa: E402
from bench import build_checkpoint, train_tokenizer  # noqa: E402
from ruclip.evaluation import harness, load_split  # noqa: E402


def write_split(folder: Path, n: int, classes: int = 10) -> Path:
    from PIL import Image
    if len(list(folder.glob('*/*.jpg'))) == n:
        return folder
    rng = np.random.default_rng(0)
    for i in range(n):
        (folder / f'{i % classes:02d}').mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((320, 240), Image.BILINEAR)
        image.save(folder / f'{i % classes:02d}' / f'{i:05d}.jpg', quality=90)
    return folder


def cpu_class() -> str:
    flags = open('/proc/cpuinfo').read() if os.path.exists('/proc/cpuinfo') else ''
    return (f"{torch.backends.cpu.get_cpu_capability()}, avx512_bf16={'avx512_bf16' in flags}, "
            f"amx={'amx_bf16' in flags}, {os.cpu_count()} cpus, {platform.processor() or platform.machine()}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--model', default='ruclip-vit-base-patch32-224')
    parser.add_argument('--dtype', default='float32')
    parser.add_argument('--n', type=int, default=10_000)
    parser.add_argument('--repeats', type=int, default=2, help='alternating rounds, best kept (default 2)')
    parser.add_argument('--workdir', default=os.path.expanduser('~/.cache/ruclip-bench'))
    parser.add_argument('--tiny', action='store_true',
                        help="the tests' tiny random model (64 wide, 2 layers) at the model's resolution: "
                             'what the harness itself costs, decoding included')
    parser.add_argument('--json', help='write the figures here')
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    bpe = train_tokenizer(workdir)
    if args.tiny:
        from checkpoints import TINY_ARCHITECTURES, write_checkpoint  # noqa: E402 (tests/helpers)
        folder = write_checkpoint(workdir / f'tiny-{args.model}', TINY_ARCHITECTURES[args.model], bpe)
    else:
        folder = build_checkpoint(workdir, args.model, bpe)
    data = write_split(workdir / f'eval-split-{args.n}', args.n)
    clip, processor = ruclip.load(str(folder), dtype=args.dtype)
    predictor = ruclip.Predictor(clip, processor, 'cpu', quiet=True)
    split = load_split('imagefolder', data, classnames=ruclip.evaluation.class_names('cifar10'),
                       templates=ruclip.evaluation.templates('cifar10'))
    figures = {'model': args.model + (' (tiny)' if args.tiny else ''), 'dtype': args.dtype, 'n_images': len(split),
               'cpu': cpu_class(),
               'torch_threads': torch.get_num_threads(), 'load_average_start': os.getloadavg()[0]}
    rounds = {'baseline_s': [], 'zeroshot_s': [], 'zeroshot_cached_s': []}
    for _ in range(args.repeats):  # alternating, so that a change in the machine's load hits both
        start = time.perf_counter()
        predictor.get_image_latents(split.images)
        rounds['baseline_s'].append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as cache:
            start = time.perf_counter()
            harness.evaluate_zeroshot(predictor, split, model=args.model, cache_dir=cache)
            rounds['zeroshot_s'].append(time.perf_counter() - start)
            start = time.perf_counter()
            harness.evaluate_zeroshot(predictor, split, model=args.model, cache_dir=cache)
            rounds['zeroshot_cached_s'].append(time.perf_counter() - start)
    figures['rounds'] = rounds
    figures.update({name: min(times) for name, times in rounds.items()})  # best round
    figures['load_average_end'] = os.getloadavg()[0]
    figures['baseline_images_per_s'] = len(split) / figures['baseline_s']
    figures['zeroshot_over_baseline'] = figures['zeroshot_s'] / figures['baseline_s']
    print(json.dumps(figures, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == '__main__':
    main()
