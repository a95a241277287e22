"""Speed of ruclip's image index (ruclip.search), against what a user would do instead, in one run.

    python benchmarks/bench_search.py                       # everything (~30 min, ~10 GB of RAM at 768)
    python benchmarks/bench_search.py --sections reindex    # one part: index, reindex, search, open

index:   `ImageIndex.update` on fresh photo files against `Predictor.get_image_latents` on the same
         files (a full-size base-patch32-224 with random weights), alternating, best round each.
reindex: a second update over 20,000 unchanged files (the model is never loaded).
search:  1,000,000 stored unit latents of 512 and 768 dimensions: exact search as ImageIndex runs it
         (float16 first pass, float32 re-ranking, over memory-mapped matrices) and float32 alone,
         against faiss flat and the kind ImageIndex picks for the size (IVF, 8-bit codes), per query,
         with recall@10 against exact and memory. Three kinds of data: 'random', uniformly random
         unit vectors (the issue's; no structure at all); 'clustered', n / 50 centres with each
         latent at cosine ~0.8 from its centre; 'spectral', a Gaussian whose variance falls as 1/i
         along axis i (about 30 effective dimensions) around a shared offset, queried from a second
         offset, as CLIP's texts lie in a cone apart from its images. Neither of the last two is
         real RuCLIP output; they bracket how real latents spread.
open:    a fresh process opening an index of 1,000,000 entries and answering one query from a
         stored latent (python startup and imports included, the model not loaded); and the same
         after `import torch`, which `ruclip search TEXT` has done for the model before it opens one.
"""
import argparse
import gc
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault('TQDM_DISABLE', '1')

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / 'tests'))
sys.path.insert(2, str(ROOT / 'benchmarks'))
sys.path.insert(3, str(ROOT / 'tests' / 'helpers'))  # bench.py's own imports


def rss_mb() -> float:
    with open('/proc/self/status') as status:
        return next(int(line.split()[1]) for line in status if line.startswith('VmRSS')) / 1024


def machine() -> str:
    import torch
    flags = open('/proc/cpuinfo').read()
    model = next(line.split(':', 1)[1].strip() for line in flags.splitlines() if line.startswith('model name'))
    extra = [flag for flag in ('avx512_bf16', 'amx_bf16') if flag in flags.split()]
    return (f'{model}, {os.cpu_count()} CPUs, torch capability {torch.backends.cpu.get_cpu_capability()}, '
            f'flags {extra or "none of avx512_bf16/amx"}, load average {os.getloadavg()[0]:.1f} at start')


def unit(rows: np.ndarray) -> np.ndarray:
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


# ---- indexing throughput ------------------------------------------------------------------------
def bench_index(workdir: Path, photos: int, repeats: int) -> dict:
    import bench
    import ruclip

    bpe = bench.train_tokenizer(workdir)
    folder = bench.build_checkpoint(workdir, 'ruclip-vit-base-patch32-224', bpe)
    clip, processor = ruclip.load(str(folder))
    predictor = ruclip.Predictor(clip, processor, 'cpu', quiet=True)
    library = Path(tempfile.mkdtemp(dir=workdir))
    files = []
    for i, image in enumerate(bench.make_photos(photos)):
        files.append(str(library / f'photo{i:04d}.jpg'))
        image.save(files[-1], quality=90)
    times = {'get_image_latents': [], 'ImageIndex.update': []}
    for round_ in range(repeats):
        started = time.perf_counter()
        predictor.get_image_latents(files)
        times['get_image_latents'].append(time.perf_counter() - started)
        index_path = library / f'round{round_}.index'
        started = time.perf_counter()
        ruclip.ImageIndex(index_path, predictor).update([library])
        times['ImageIndex.update'].append(time.perf_counter() - started)
    best = {name: photos / min(values) for name, values in times.items()}
    return dict(photos=photos, batch_size=predictor.batch_size, images_per_s=best,
                ratio=best['ImageIndex.update'] / best['get_image_latents'])


# ---- re-index of an unchanged folder ------------------------------------------------------------
def bench_reindex(workdir: Path, files: int, repeats: int) -> dict:
    import ruclip
    from helpers.checkpoints import TINY_ARCHITECTURES, write_checkpoint
    from helpers.library import predictor_for
    from helpers.texts import train_bpe

    tiny = workdir / 'tiny-checkpoint'
    if not (tiny / 'config.json').is_file():
        write_checkpoint(tiny, TINY_ARCHITECTURES['ruclip-vit-base-patch32-224'], train_bpe(workdir / 'tiny-bpe', 600))
    library = Path(tempfile.mkdtemp(dir=workdir))
    names = []
    payload = open(ROOT / 'pics' / 'label_grid.png', 'rb').read()[:2048]
    for i in range(files):
        sub = library / f'album{i // 1000:02d}'
        sub.mkdir(exist_ok=True)
        names.append(str(sub / f'photo{i:05d}.jpg'))
        with open(names[-1], 'wb') as file:
            file.write(payload + i.to_bytes(4, 'little'))
    embeddings = library.parent / 'reindex.npz'
    np.savez(embeddings, latents=unit(np.random.default_rng(0).normal(size=(files, 24)).astype(np.float32)),
             files=np.array(names))
    index_path = library.parent / 'reindex.index'
    if index_path.exists():
        index_path.unlink()
    ruclip.ImageIndex(index_path, predictor_for(tiny)).import_embeddings(embeddings, trust_model=True)

    def no_model():
        raise RuntimeError('the model was loaded')

    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        report = ruclip.ImageIndex(index_path, no_model).update([library])
        seconds.append(time.perf_counter() - started)
        assert report.unchanged == files and not report.changed
    return dict(files=files, best_s=min(seconds), median_s=float(np.median(seconds)),
                files_per_s=files / min(seconds))


# ---- search latency, recall and memory ----------------------------------------------------------
def latents_of(kind: str, n: int, dim: int, seed: int) -> np.ndarray:
    """n unit latents of one of three kinds (see the module's docstring): 'random', 'clustered', 'spectral'."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    centres = unit(rng.normal(size=(max(1, n // 50), dim)).astype(np.float32)) if kind == 'clustered' else None
    for start in range(0, n, 100_000):
        block = rng.normal(size=(min(100_000, n - start), dim)).astype(np.float32)
        if centres is not None:  # noise of norm ~0.75 around a centre: cosine ~0.8 to it
            block = centres[rng.integers(0, len(centres), len(block))] + 0.75 / np.sqrt(dim) * block
        elif kind == 'spectral':
            block = _spectral(block, dim, mean_axis=0)
        out[start:start + len(block)] = unit(block)
    return out


def _spectral(normal: np.ndarray, dim: int, mean_axis: int) -> np.ndarray:
    """Gaussian rows with variance 1/(i+1) along axis i (about 30 effective dimensions at 768, as
    embeddings of real pictures have tens, not hundreds) and a shared offset along one more axis,
    so that two rows have a cosine of about 0.3 on average, as CLIP image latents do."""
    scaled = normal * (1.0 / np.sqrt(np.arange(1, dim + 1, dtype=np.float32)))
    scaled = np.roll(scaled, 2, axis=1)  # axes 0 and 1 hold the offsets of pictures and of texts
    scaled[:, mean_axis] += np.sqrt(0.3 * np.sum(1.0 / np.arange(1, dim + 1)) / 0.7)
    return scaled


def _queries(data: str, latents: np.ndarray, count: int, dim: int) -> np.ndarray:
    """Random unit vectors for random data; for clustered data, stored latents moved as far again
    from where they are (another picture of the same kind of thing); for spectral data, new rows of
    the same spread around the other offset (texts, which CLIP puts in a cone of their own)."""
    rng = np.random.default_rng(dim + 1)
    if data == 'random':
        return unit(rng.normal(size=(count, dim)).astype(np.float32))
    if data == 'spectral':
        return unit(_spectral(rng.normal(size=(count, dim)).astype(np.float32), dim, mean_axis=1))
    picked = np.asarray(latents[np.sort(rng.choice(len(latents), count, replace=False))])
    return unit(picked + 0.75 / np.sqrt(dim) * rng.normal(size=picked.shape).astype(np.float32))


def bench_search(workdir: Path, n: int, dims, queries: int, kinds) -> list:
    from ruclip.search import approximate, exact

    rows = []

    def report(**row):
        rows.append(row)
        print(json.dumps(row), flush=True)

    def timed(search, query_rows):
        search(query_rows[0])  # pages in
        started = time.perf_counter()
        found = [search(q)[1] for q in query_rows]
        return found, (time.perf_counter() - started) / len(query_rows) * 1e3

    for dim in dims:
        for data in kinds:
            latents_path = workdir / f'latents-{data}-{n}-{dim}.npy'
            np.save(latents_path, latents_of(data, n, dim, seed=dim))
            gc.collect()
            latents = np.load(latents_path, mmap_mode='r')
            half = exact.half_latents(latents)
            np.save(workdir / 'half.npy', half.rows)
            half = exact.HalfLatents(np.load(workdir / 'half.npy', mmap_mode='r'), half.max_norm)
            query_rows = _queries(data, latents, queries, dim)
            positions = np.arange(n)  # the row ids
            before = rss_mb()
            truth, ms = timed(lambda q: exact.top_k(latents, q, 10, half=half), query_rows)
            report(dim=dim, data=data, method='exact, float16 first pass (ImageIndex)', build_s=0.0, ms_per_query=ms,
                   recall_at_10=1.0, memory_mb=(latents.nbytes + half.rows.nbytes) / 2 ** 20,
                   extra_rss_mb=rss_mb() - before)
            found, ms = timed(lambda q: exact.top_k(latents, q, 10), query_rows[:10])
            assert all(np.array_equal(a, b) for a, b in zip(found, truth))
            report(dim=dim, data=data, method='exact, float32 only (numpy)', build_s=0.0, ms_per_query=ms,
                   recall_at_10=1.0, memory_mb=latents.nbytes / 2 ** 20)
            for kind in ('flat', approximate.choose_kind(n)):
                before = rss_mb()
                started = time.perf_counter()
                index = approximate.build(latents, positions, kind)
                build_s = time.perf_counter() - started
                started = time.perf_counter()
                calibration = approximate.calibrate(index, latents, positions, half)  # as ImageIndex does
                calibrate_s = time.perf_counter() - started
                path = str(workdir / f'{kind}.faiss')
                approximate.save(index, path, calibration, dict(contents='benchmark'))
                del index
                gc.collect()
                index, _, _ = approximate.load(path)
                ivf = None if kind == 'flat' else approximate.faiss().extract_index_ivf(index)
                chosen = ivf.nprobe if ivf else None
                for nprobe in ((None,) if ivf is None else
                               [max(1, math.ceil(ivf.nlist * f)) for f in approximate.PROBED_FRACTIONS]):
                    if nprobe:
                        ivf.nprobe = nprobe
                    found, ms = timed(lambda q: approximate.top_k(index, q, 10, latents, positions),
                                      query_rows[:10] if kind == 'flat' else query_rows)
                    recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)]))
                    method = f'faiss {kind}' + (f' {ivf.nlist} cells, nprobe {nprobe}' if nprobe else '') + \
                        (' (calibrated: ImageIndex uses this)' if nprobe == chosen and nprobe else '')
                    report(dim=dim, data=data, method=method, build_s=build_s, calibrate_s=calibrate_s,
                           calibration_recall=calibration['recall_at_10'] if nprobe == chosen else None,
                           ms_per_query=ms, recall_at_10=recall,
                           memory_mb=os.path.getsize(path) / 2 ** 20, extra_rss_mb=rss_mb() - before)
                del index, ivf
                os.unlink(path)
                os.unlink(approximate.report_path(path))
                gc.collect()
            del latents, half
            os.unlink(latents_path)
            os.unlink(workdir / 'half.npy')
    return rows


# ---- open time of a 1M index --------------------------------------------------------------------
def bench_open(workdir: Path, n: int, dim: int) -> dict:
    import ruclip
    from helpers.checkpoints import TINY_ARCHITECTURES, write_checkpoint
    from helpers.library import predictor_for
    from helpers.texts import train_bpe

    folder = workdir / f'tiny-{dim}'
    if not (folder / 'config.json').is_file():
        write_checkpoint(folder, dict(TINY_ARCHITECTURES['ruclip-vit-base-patch32-224'], embed_dim=dim),
                         train_bpe(workdir / f'tiny-bpe-{dim}', 600))
    index_path = workdir / f'open-{n}.index'
    if not index_path.exists():
        embeddings = workdir / f'open-{n}.npy'
        np.save(embeddings, latents_of('random', n, dim, seed=0))
        with open(workdir / f'open-{n}.files.txt', 'w') as listing:
            listing.writelines(f'/nowhere/album{i // 1000}/photo{i}.jpg\n' for i in range(n))
        started = time.perf_counter()
        ruclip.ImageIndex(index_path, predictor_for(folder)).import_embeddings(embeddings, trust_model=True)
        import_s = time.perf_counter() - started
        os.unlink(embeddings)
    else:
        import_s = None
    script = ('import time; t = time.perf_counter(); %s; import ruclip; i = ruclip.ImageIndex(%r); '
              'h = i.similar(12345, k=10); print(time.perf_counter() - t)')
    runs = [float(subprocess.run([sys.executable, '-c', script % ('pass', str(index_path))], capture_output=True,
                                 text=True, check=True, cwd=ROOT).stdout) for _ in range(3)]
    # `ruclip search TEXT` has imported torch for the model before it opens the index
    after_torch = [float(subprocess.run([sys.executable, '-c', script.replace('t = time.perf_counter(); %s',
                                                                            '%s; t = time.perf_counter()')
                                         % ('import torch', str(index_path))],
                                        capture_output=True, text=True, check=True, cwd=ROOT).stdout)
                   for _ in range(3)]
    started = time.perf_counter()
    subprocess.run([sys.executable, '-c', 'import ruclip'], check=True, cwd=ROOT)
    python_s = time.perf_counter() - started
    return dict(entries=n, dim=dim, import_s=import_s, open_and_first_query_s=min(runs), all_runs_s=runs,
                torch_imported_first_s=min(after_torch),
                python_startup_s=python_s, db_gb=os.path.getsize(index_path) / 2 ** 30)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sections', default='index,reindex,search,open')
    parser.add_argument('--workdir', default=str(Path.home() / '.cache' / 'ruclip-bench-search'))
    parser.add_argument('--photos', type=int, default=256)
    parser.add_argument('--files', type=int, default=20_000)
    parser.add_argument('--size', type=int, default=1_000_000)
    parser.add_argument('--dims', default='512,768')
    parser.add_argument('--queries', type=int, default=50)
    parser.add_argument('--data', default='random,clustered,spectral', help='kinds of latents for the search section')
    parser.add_argument('--repeats', type=int, default=2)
    parser.add_argument('--json', help='write the results here too')
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results = dict(machine=machine(), python=platform.python_version())
    print(results['machine'], flush=True)
    sections = args.sections.split(',')
    if 'index' in sections:
        results['index'] = bench_index(workdir, args.photos, args.repeats)
        print(json.dumps(results['index']), flush=True)
    if 'reindex' in sections:
        results['reindex'] = bench_reindex(workdir, args.files, max(3, args.repeats))
        print(json.dumps(results['reindex']), flush=True)
    if 'search' in sections:
        results['search'] = bench_search(workdir, args.size, [int(d) for d in args.dims.split(',')], args.queries,
                                         args.data.split(','))
    if 'open' in sections:
        results['open'] = bench_open(workdir, args.size, 512)
        print(json.dumps(results['open']), flush=True)
    results['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == '__main__':
    main()
