"""Load with a cached compiled model (OpenVINO) against ruclip.load on PyTorch, fresh processes.

    python benchmarks/bench_openvino_load.py                                  # large-patch14-336, 3 rounds
    python benchmarks/bench_openvino_load.py --model ruclip-vit-base-patch32-384 --repeats 5

The issue's target: ruclip.load(..., backend='openvino') of large-patch14-336 with its compiled model
cached no slower than ruclip.load on PyTorch. Each candidate runs in a fresh process that has
imported torch and ruclip (as a user's script has) before the clock starts, so OpenVINO's own import
counts against it; candidates alternate, best of --repeats rounds kept, every file read once before
(page cache warm for all). Also timed: the first use (one image, one text: OpenVINO lays its weights
out on the first inference), the peak RSS, and, in one more process per precision, the phases of a
cached load. The entries are built first (once; kept under --workdir) in processes of their own.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench  # noqa: E402  (puts the repository first on sys.path)

CHILD = r'''
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
os.environ['RUCLIP_OPENVINO_CACHE'] = sys.argv[2]
import torch
import ruclip

def peak_mb():
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith('VmHWM')) / 1024

folder, backend, dtype = sys.argv[3], sys.argv[4], sys.argv[5]
start = time.perf_counter()
if backend == 'torch':
    model, processor = ruclip.load(folder)
else:
    model, processor = ruclip.load(folder, backend=backend, dtype=dtype)
load_s = time.perf_counter() - start
size = model.config.image_resolution
with torch.inference_mode():
    model.encode_image(torch.zeros(1, 3, size, size))
    model.encode_text(processor(text=['кошка'])['input_ids'])
print(json.dumps(dict(load_s=load_s, first_use_s=time.perf_counter() - start, peak_mb=peak_mb(),
                      precision=getattr(model, 'precision', str(model.dtype)))))
'''

PHASES = r'''
import json, os, sys, time
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, sys.argv[1])
import torch
import ruclip
from ruclip.backends import openvino as backend
from ruclip.backends._cache import cache_key, read_meta

folder, root, precision = sys.argv[3], sys.argv[2], sys.argv[4]
times = {}
def timed(name, fn):
    start = time.perf_counter()
    result = fn()
    times[name] = time.perf_counter() - start
    return result

ov = timed('import openvino', lambda: __import__('openvino'))
core = timed('Core()', ov.Core)
key, _ = timed('key (config sha256, weights digest memo, versions, CPU)',
               lambda: cache_key(folder, precision, ov, core, root))
entry = os.path.join(root, f'{precision}-{key[:24]}')
timed('meta.json', lambda: read_meta(entry))
properties = {'INFERENCE_PRECISION_HINT': backend.HINTS[precision], 'PERFORMANCE_HINT': 'LATENCY'}
def copied(name):
    with open(os.path.join(entry, name), 'rb') as f:
        return core.import_model(f.read(), 'CPU', properties)
timed('image blob, read and copied (before)', lambda: copied(backend.IMAGE_BLOB))
timed('text blob, read and copied (before)', lambda: copied(backend.TEXT_BLOB))
timed('both blobs mapped, in two threads (now)', lambda: backend._import(core, entry, precision))
print(json.dumps(times))
'''

BUILD = r'''
import os, sys, time
sys.path.insert(0, sys.argv[1])
os.environ['RUCLIP_OPENVINO_CACHE'] = sys.argv[2]
import ruclip
start = time.perf_counter()
model, _ = ruclip.load(sys.argv[3], backend='openvino', dtype=sys.argv[4])
print(f'  {sys.argv[4]}: {time.perf_counter() - start:.1f} s, {model.cache_folder}', flush=True)
'''


def child(script: str, *argv) -> str:
    out = subprocess.run([sys.executable, '-c', script, str(bench.ROOT), *map(str, argv)], capture_output=True,
                         text=True, env=dict(os.environ, TQDM_DISABLE='1'))
    if out.returncode != 0:
        raise RuntimeError(f'{argv} failed:\n{out.stderr[-3000:]}')
    return out.stdout.strip().splitlines()[-1]


def read_all(folder: Path) -> None:
    for path in sorted(folder.rglob('*')):
        if path.is_file():
            with open(path, 'rb') as f:
                while f.read(1 << 24):
                    pass


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', default='ruclip-vit-large-patch14-336', choices=list(bench.ARCHITECTURES))
    parser.add_argument('--workdir', default=str(Path.home() / '.cache' / 'ruclip-bench'))
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args(argv)
    import openvino

    capabilities = openvino.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES')
    precisions = ['fp32'] + (['bf16'] if 'BF16' in capabilities else []) + ['int8']
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    folder = bench.build_checkpoint(workdir, args.model, bench.train_tokenizer(workdir))
    cache = workdir / 'openvino-cache'
    print('entries (built unless cached):', flush=True)
    for precision in precisions:
        print(child(BUILD, cache, folder, precision), flush=True)
    loads = [os.getloadavg()[0]]
    read_all(folder)
    read_all(cache)
    candidates = [('torch', 'fp32')] + [('openvino', p) for p in precisions] + [('auto', 'auto')]
    runs = {candidate: [] for candidate in candidates}
    for _ in range(args.repeats):
        for candidate in candidates:
            runs[candidate].append(json.loads(child(CHILD, cache, folder, *candidate)))
    phases = {p: json.loads(child(PHASES, cache, folder, p)) for p in precisions}
    loads.append(os.getloadavg()[0])

    base = min(r['load_s'] for r in runs[('torch', 'fp32')])
    base_use = min(r['first_use_s'] for r in runs[('torch', 'fp32')])
    lines = [f'`python benchmarks/bench_openvino_load.py --model {args.model} --repeats {args.repeats}`,',
             f'{bench.machine()}; OpenVINO {openvino.get_version()} CPU {capabilities};',
             f'1-minute load average {loads[0]:.2f} at the start, {loads[1]:.2f} at the end; best of {args.repeats}, '
             f'fresh processes, files in the page cache.', '',
             '| ruclip.load(...) | runs | load s | load / PyTorch load | load + first image and text, s | '
             'the same / PyTorch | peak RSS MB |', '|---|---|---|---|---|---|---|']
    for (backend, dtype), results in runs.items():
        best = min(results, key=lambda r: r['load_s'])
        use = min(r['first_use_s'] for r in results)
        call = '(folder)' if backend == 'torch' else f"(folder, backend='{backend}', dtype='{dtype}')"
        lines.append(f"| {call} | {results[0]['precision']} | {best['load_s']:.2f} | {best['load_s'] / base:.2f}x | "
                     f"{use:.2f} | {use / base_use:.2f}x | {max(r['peak_mb'] for r in results):.0f} |")
    lines += ['', 'Phases of a cached load, one fresh process per precision (s):', '',
              '| phase | ' + ' | '.join(precisions) + ' |', '|---|' + '---|' * len(precisions)]
    for name in phases[precisions[0]]:
        lines.append(f'| {name} | ' + ' | '.join(f'{phases[p][name]:.3f}' for p in precisions) + ' |')
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
