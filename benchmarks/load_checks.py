"""What the load-time checks cost: ruclip.load of a full-size random checkpoint with and without the
finite-weights check (ruclip._weights.check_finite), and the check alone on the loaded weights.

    python benchmarks/load_checks.py [--model ruclip-vit-large-patch14-336] [--repeats 3]

The checkpoint is built by bench.py's builder in ~/.cache/ruclip-bench (about 1.7 GB for large-patch14-336).
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench  # noqa: E402  (puts the repository and tests/ on sys.path)
import torch  # noqa: E402

import ruclip  # noqa: E402
import ruclip._weights as weights  # noqa: E402


def best_of(repeats, function):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', default='ruclip-vit-large-patch14-336', choices=list(bench.ARCHITECTURES))
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--workdir', default=str(Path.home() / '.cache' / 'ruclip-bench'))
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    folder = bench.build_checkpoint(workdir, args.model, bench.train_tokenizer(workdir))
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability '
          f'{torch.backends.cpu.get_cpu_capability()}')
    check = weights.check_finite
    for dtype in (torch.float32, torch.bfloat16):
        clip = ruclip.CLIP.from_pretrained(folder, dtype=dtype)  # warm the page cache
        tensors = dict(clip.state_dict())
        alone = best_of(args.repeats, lambda: check(tensors))  # noqa: F821 - bound above, in this loop
        with_check = best_of(args.repeats, lambda: ruclip.CLIP.from_pretrained(folder, dtype=dtype))
        weights.check_finite = lambda tensors: None
        try:
            without = best_of(args.repeats, lambda: ruclip.CLIP.from_pretrained(folder, dtype=dtype))
        finally:
            weights.check_finite = check
        n = sum(t.numel() for t in tensors.values())
        print(f'{args.model} {str(dtype)[6:]}: {n / 1e6:.0f} M weights; check_finite alone {alone[0]:.3f} s '
              f'(median {alone[1]:.3f}); load {with_check[0]:.2f} s with the check, {without[0]:.2f} s without '
              f'(medians {with_check[1]:.2f} / {without[1]:.2f}): +{100 * (with_check[0] / without[0] - 1):.1f}%')
        del clip, tensors


if __name__ == '__main__':
    main()
