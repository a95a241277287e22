"""Sharded embedding (ruclip.distributed): the local engine and the Ray engine against
Predictor.get_image_latents on the same image files, in the same process and run.

    python benchmarks/bench_distributed.py                  # ViT-B/32-224, 192 JPEG files, CPU
    python benchmarks/bench_distributed.py --device cuda --images 4096 --ray-actors 1

Measured: images/s of get_image_latents(files) (what a user would call instead), of run_local into
a fresh folder (listing, decoding, model, float16 shards, parquet, markers), and of run_ray with
1 and 2 model actors (wall time of the run, actor start and model load in the actors included),
plus Ray's start-up (ray.init of a local cluster). Local and get_image_latents alternate, best of
--rounds. The checkpoint is a full-size random one (benchmarks/bench.py's), written once.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (puts the repository first on sys.path)

import ruclip  # noqa: E402
from ruclip.distributed import Settings, list_inputs, run_local, run_ray  # noqa: E402


def cpu_class() -> str:
    flags = open('/proc/cpuinfo').read() if os.path.exists('/proc/cpuinfo') else ''
    extra = [flag for flag in ('avx512_bf16', 'amx_bf16') if flag in flags]
    return f'{torch.backends.cpu.get_cpu_capability()}' + (f' + {", ".join(extra)}' if extra else '')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', default='ruclip-vit-base-patch32-224', choices=sorted(bench.ARCHITECTURES))
    parser.add_argument('--images', type=int, default=192)
    parser.add_argument('--partitions', type=int, default=4)
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--ray-actors', type=int, nargs='*', default=[1, 2])
    parser.add_argument('--workdir', default=str(Path.home() / '.cache' / 'ruclip-bench'))
    args = parser.parse_args(argv)

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    folder = bench.build_checkpoint(workdir, args.model, bench.train_tokenizer(workdir))
    scratch = Path(tempfile.mkdtemp(prefix='bench-distributed-'))
    try:
        for i, photo in enumerate(bench.make_photos(args.images)):
            photo.save(scratch / f'{i:05d}.jpg', quality=90)
        files = ruclip.find_images(str(scratch))
        clip, processor = ruclip.load(str(folder), device=args.device)
        predictor = ruclip.Predictor(clip, processor, args.device, quiet=True)
        predictor.get_image_latents(files[:predictor.batch_size])  # warm-up
        inputs = list_inputs([str(scratch)])
        rates = {'get_image_latents': [], 'local engine': []}
        inside = []  # seconds the local engine spends inside get_image_latents, per round
        embed = predictor.get_image_latents

        def timed(*a, **k):
            started = time.perf_counter()
            try:
                return embed(*a, **k)
            finally:
                inside[-1] += time.perf_counter() - started

        for round_ in range(args.rounds):
            started = time.perf_counter()
            predictor.get_image_latents(files)
            rates['get_image_latents'].append(len(files) / (time.perf_counter() - started))
            out = scratch.parent / f'{scratch.name}-out-{round_}'
            inside.append(0.0)
            predictor.get_image_latents = timed
            report = run_local(inputs, Settings(model=str(folder), out=str(out), partition_count=args.partitions,
                                                device=args.device), predictor=predictor)
            del predictor.get_image_latents
            overhead = 1 - inside[-1] / report.seconds
            assert report.rows == len(files) and report.complete
            rates['local engine'].append(report.rows_per_second)
            rates.setdefault('overhead', []).append(overhead)
            shutil.rmtree(out)
        overheads = rates.pop('overhead')
        best = {name: max(values) for name, values in rates.items()}
        lines = [f'{args.model}, {len(files)} JPEG files 640x480, {args.partitions} partitions, device {args.device}, '
                 f'CPU class {cpu_class()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}',
                 '| engine | images/s | vs get_image_latents |', '|---|---|---|']
        for name, rate in best.items():
            lines.append(f'| {name} | {rate:.1f} | {rate / best["get_image_latents"]:.3f}x |')
        lines.append(f'| local engine: share of its run outside get_image_latents (listing, shards, markers) | '
                     f'{", ".join(f"{100 * o:.1f}%" for o in overheads)} | |')
        if args.ray_actors:
            del predictor, clip
            import ray

            from ruclip.distributed.ray_engine import init_ray
            started = time.perf_counter()
            init_ray(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
            lines.append(f'| Ray start-up (local cluster, ray.init) | {time.perf_counter() - started:.1f} s | |')
            for actors in args.ray_actors:
                out = scratch.parent / f'{scratch.name}-ray-{actors}'
                cpus = min(1.0, (os.cpu_count() - 0.25) / actors)
                report = run_ray(inputs, Settings(model=str(folder), out=str(out), partition_count=args.partitions,
                                                  device=args.device), actors=actors, cpus_per_actor=cpus)
                assert report.rows == len(files) and report.complete
                ratio = report.rows_per_second / best['get_image_latents']
                lines.append(f'| Ray, {actors} CPU actor(s) of {cpus:.2f} CPU, actor start included | '
                             f'{report.rows_per_second:.1f} | {ratio:.3f}x |')
                shutil.rmtree(out)
            ray.shutdown()
        lines.append(f'load average at the end {os.getloadavg()[0]:.1f}')
        print('\n'.join(lines))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == '__main__':
    main()
