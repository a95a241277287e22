"""backend='openvino' against ours on PyTorch, same random full-size weights, in one run.

    python benchmarks/bench_openvino.py                 # base-patch32-384: 16 images, 60 prompts, 3 rounds
    python benchmarks/bench_openvino.py --quick         # one round

Candidates: PyTorch fp32 (the baseline) and bf16, OpenVINO fp32, bf16 (only where the CPU has bf16
units) and int8. Measured, alternating the candidates, best round kept: the image tower on a batch
of processed photos, the text tower on prompts (encode_text), and zero-shot end to end (PIL photos ->
labels through Predictor, 10 classes x 6 templates); with the cosine to PyTorch fp32's latents and
the share of labels that agree. Load times: ruclip.load, and for OpenVINO the first load (convert,
quantise, compile, write the cache entry; in a fresh cache folder) and a second one (the entry
imported). The checkpoint is bench.py's (random weights, written once under --workdir).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault('TQDM_DISABLE', '1')
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import bench  # noqa: E402  (puts the repository first on sys.path)
import ruclip  # noqa: E402
from ruclip.backends import openvino as ov_backend  # noqa: E402


def cpu_class(core) -> str:
    flags = set(open('/proc/cpuinfo').read().split()) if os.path.exists('/proc/cpuinfo') else set()
    units = [f for f in ('avx2', 'avx512f', 'avx512_vnni', 'avx_vnni', 'avx512_bf16', 'amx_bf16', 'amx_int8')
             if f in flags]
    return (f"{bench.machine()}; torch {torch.__version__} CPU capability "
            f"{torch.backends.cpu.get_cpu_capability()}; OpenVINO {core.get_property('CPU', 'FULL_DEVICE_NAME')} "
            f"{core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES')}; flags {' '.join(units)}")


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def cosine(a, b) -> float:
    return float(torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1).min())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', default='ruclip-vit-base-patch32-384', choices=list(bench.ARCHITECTURES))
    parser.add_argument('--workdir', default=str(Path.home() / '.cache' / 'ruclip-bench'))
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--quick', action='store_true', help='one round')
    parser.add_argument('--images', type=int, default=16, help='images in the tower batch (default 16)')
    parser.add_argument('--texts', type=int, default=60, help='prompts for the text tower (default 60)')
    parser.add_argument('--e2e-images', type=int, default=32, help='photos end to end (default 32)')
    parser.add_argument('--cache-dir', help='reuse the OpenVINO entries there (default: a new folder, so the first '
                                            'load builds them); with it, "first" is a cached load too')
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    import openvino as ov
    core = ov.Core()
    load_at_start = os.getloadavg()[0]
    print(cpu_class(core), flush=True)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    folder = str(bench.build_checkpoint(workdir, args.model, bench.train_tokenizer(workdir)))

    candidates, loads = {}, {}
    loads['torch fp32'], candidates['torch fp32'] = timed(lambda: ruclip.load(folder))
    loads['torch bf16'], candidates['torch bf16'] = timed(lambda: ruclip.load(folder, dtype=torch.bfloat16))
    precisions = ['fp32'] + (['bf16'] if 'BF16' in core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES') else [])
    cache = args.cache_dir or tempfile.mkdtemp(prefix='ruclip-ov-bench-')
    os.environ[ov_backend.CACHE_ENV] = cache
    for precision in precisions + ['int8']:
        print(f'  building openvino {precision} ...', flush=True)
        dtype = {'fp32': torch.float32, 'bf16': torch.bfloat16}.get(precision, 'int8')
        first, _ = timed(lambda: ruclip.load(folder, backend='openvino', dtype=dtype))
        second = second_load(folder, dtype, cache)
        name = f'openvino {precision}'
        loads[name] = (first, second)
        candidates[name] = ruclip.load(folder, backend='openvino', dtype=dtype)
    processor = candidates['torch fp32'][1]

    photos = bench.make_photos(max(args.images, args.e2e_images))
    pixel_values = processor(images=photos[:args.images])['pixel_values']
    prompts = [template.format(label) for label in bench.CLASSES for template in bench.TEMPLATES][:args.texts]
    input_ids = processor(text=prompts)['input_ids']
    predictors = {name: ruclip.Predictor(model, processor, quiet=True, num_workers=0)
                  for name, (model, _) in candidates.items()}
    classes = bench.CLASSES[:10]

    def zero_shot(predictor):
        return predictor.run(photos[:args.e2e_images], predictor.get_text_latents(classes))

    with torch.inference_mode():
        image = bench.interleaved({n: (lambda m=m: m.encode_image(pixel_values)) for n, (m, _) in candidates.items()},
                                  repeats)
        text = bench.interleaved({n: (lambda m=m: m.encode_text(input_ids)) for n, (m, _) in candidates.items()},
                                 repeats)
    e2e = bench.interleaved({n: (lambda p=p: zero_shot(p)) for n, p in predictors.items()}, repeats)

    base = 'torch fp32'
    command = ' '.join(['python benchmarks/bench_openvino.py'] + (argv if argv is not None else sys.argv[1:]))
    lines = [f'`{command}`, {args.model} (random weights),',
             f'{cpu_class(core)};', f'1-minute load average {load_at_start:.2f} at the start, {os.getloadavg()[0]:.2f} '
             f'at the end; best of {repeats}.', '',
             f'| backend | load s (first / cached) | image tower, {args.images} images | text tower, {len(prompts)} '
             f'prompts | zero-shot, {args.e2e_images} photos | cosine to fp32 (image / text) | labels as fp32 |',
             '|---|---|---|---|---|---|---|']
    for name in candidates:
        load = loads[name]
        load_text = f'{load:.2f}' if isinstance(load, float) else f'{load[0]:.1f} / {load[1]:.2f}'
        agree = sum(a == b for a, b in zip(e2e[name][1], e2e[base][1])) / len(e2e[base][1])
        lines.append(f'| {name} | {load_text} | ' + ' | '.join(
            f'{section[name][0]:.3f} s ({section[base][0] / section[name][0]:.2f}x)' for section in (image, text, e2e))
            + f' | {cosine(image[name][1], image[base][1]):.5f} / {cosine(text[name][1], text[base][1]):.5f} '
              f'| {agree:.0%} |')
    int8 = candidates['openvino int8'][0]
    lines.append(f'\nint8 check-set cosine (the gate, >= 0.995 for a default): {int8.int8_cosine:.5f}')
    print('\n'.join(lines))


SECOND_LOAD = r'''
import os, sys, time, torch
sys.path.insert(0, sys.argv[1])
os.environ['RUCLIP_OPENVINO_CACHE'] = sys.argv[4]
import ruclip, ruclip.pretrained, ruclip.backends.openvino, openvino  # imports before the clock starts
dtype = {'fp32': torch.float32, 'bf16': torch.bfloat16}.get(sys.argv[3], sys.argv[3])
start = time.perf_counter()
ruclip.load(sys.argv[2], backend='openvino', dtype=dtype)
print(time.perf_counter() - start)
'''


def second_load(folder: str, dtype, cache: str) -> float:
    """Seconds of ruclip.load in a fresh process, the cache entry already written (imports excluded)."""
    name = {torch.float32: 'fp32', torch.bfloat16: 'bf16'}.get(dtype, dtype)
    out = subprocess.run([sys.executable, '-c', SECOND_LOAD, str(bench.ROOT), folder, name, cache],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


if __name__ == '__main__':
    main()
