"""Speed of `ruclip serve`'s embeddings API against the Predictor itself, in one run.

    python benchmarks/bench_serve.py                          # 64 images, 1,000 captions, 32 clients
    python benchmarks/bench_serve.py --images 128 --texts 2000

A full-size ruclip-vit-base-patch32-224 with random weights (bench.build_checkpoint), PyTorch fp32 in
both the benchmark and the server, which runs as `ruclip serve --model FOLDER` in its own process.
images: `Predictor.get_image_latents` on N photo files (640x480 JPEG) in this process, against N
        requests of one image each (a data URI of the same file) from --clients concurrent clients,
        to the server batching (--max-batch 32 --max-wait-ms 5) and to the same server answering one
        request at a time (--max-batch 1: one forward pass per request).
texts:  `Predictor.get_caption_latents` on --texts captions in one call, against --texts requests of
        one caption each from the same clients, to both servers.
Both servers run side by side; each is warmed up (a round of requests), then the three are timed in
turn, --repeats rounds, and the best round of each kept. Latency is per request as the client sees
it (p50, p99, of the best round). Clients and servers share this machine's CPUs.
"""
import argparse
import asyncio
import base64
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault('TQDM_DISABLE', '1')

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / 'tests'))
sys.path.insert(2, str(ROOT / 'benchmarks'))
sys.path.insert(3, str(ROOT / 'tests' / 'helpers'))  # bench.py's own imports


def start_server(folder: Path, max_batch: int) -> tuple:
    command = [sys.executable, '-m', 'ruclip', 'serve', '--model', str(folder), '--port', '0', '--quiet',
               '--backend', 'torch', '--dtype', 'fp32', '--device', 'cpu', '--max-batch', str(max_batch),
               '--max-wait-ms', '5']
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    line = process.stdout.readline()
    if ' at http://' not in line:
        process.kill()
        raise RuntimeError(f'the server did not start: {line!r}')
    return process, line.split(' at ')[1].split()[0].rstrip('/')


async def clients(url: str, bodies: list, concurrency: int) -> tuple:
    """(seconds for all, [latency of each request]) with `concurrency` clients taking bodies in turn.

    Each client is one kept-alive HTTP/1.1 connection written to and read from with asyncio's streams:
    the lightest load generator Python has (as wrk or oha would be), since it shares this machine's
    cores with the server; a library client (httpx, openai) spends about as much CPU per request as
    the server's own HTTP work. tests/serve checks the openai client against the same API."""
    host, port = url.split('//')[1].split(':')
    requests = [(b'POST /v1/embeddings HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n'
                 b'Content-Length: %d\r\n\r\n' % (url.split('//')[1].encode(), len(body)) + body)
                for body in (json.dumps(body).encode() for body in bodies)]
    latencies, queue = [], list(reversed(requests))

    async def client():
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while queue:
                request = queue.pop()
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b'\r\n\r\n')
                length = int(re.search(rb'(?i)content-length: *(\d+)', head).group(1))
                body = await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                if not head.startswith(b'HTTP/1.1 200'):
                    raise RuntimeError(f'{head[:40]!r}: {body[:200]!r}')
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


def measure(url: str, bodies: list, concurrency: int) -> dict:
    seconds, latencies = asyncio.run(clients(url, bodies, concurrency))
    latencies.sort()
    return dict(per_s=len(bodies) / seconds, p50_ms=1000 * statistics.median(latencies),
                p99_ms=1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))])


def tower_batching_gain(clip, processor, files: list, batch: int) -> float:
    """The image tower alone on decoded pixel_values: images/s at `batch` per forward pass over images/s
    one at a time (best of 2 each). No server batching can gain more than this over one request at a time."""
    import torch

    pixel_values = processor(images=files[:batch])['pixel_values']
    rates = {1: 0.0, batch: 0.0}
    with torch.inference_mode():
        clip.encode_image(pixel_values[:2])
        for _ in range(2):
            for size in rates:
                started = time.perf_counter()
                for start in range(0, len(pixel_values), size):
                    clip.encode_image(pixel_values[start:start + size])
                rates[size] = max(rates[size], len(pixel_values) / (time.perf_counter() - started))
    return rates[batch] / rates[1]


def caption_batch_ceiling(predictor, captions: list, clients: int) -> float:
    """get_caption_latents on the captions in chunks of `clients` (in order), over one call on them all (best of 2
    each). With one caption per request, no batch can hold more than `clients` captions: this bounds the API's
    rate against the Predictor's one call, before any HTTP work."""
    rates = {}
    for _ in range(2):
        for name, run in (('chunks', lambda: [predictor.get_caption_latents(captions[start:start + clients])
                                             for start in range(0, len(captions), clients)]),
                          ('one call', lambda: predictor.get_caption_latents(captions))):
            started = time.perf_counter()
            run()
            rates[name] = max(rates.get(name, 0.0), len(captions) / (time.perf_counter() - started))
    return rates['chunks'] / rates['one call']


def best(rounds: list) -> dict:
    return max(rounds, key=lambda result: result['per_s'])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--images', type=int, default=64)
    parser.add_argument('--texts', type=int, default=1000)
    parser.add_argument('--clients', type=int, default=32)
    parser.add_argument('--repeats', type=int, default=2, help='rounds, alternating; the best of each is kept')
    parser.add_argument('--workdir', type=Path, default=Path(tempfile.gettempdir()) / 'ruclip-bench')
    args = parser.parse_args(argv)

    import bench
    import ruclip

    args.workdir.mkdir(parents=True, exist_ok=True)
    folder = bench.build_checkpoint(args.workdir, 'ruclip-vit-base-patch32-224', bench.train_tokenizer(args.workdir))
    photos = Path(tempfile.mkdtemp(dir=args.workdir))
    files = []
    for i, image in enumerate(bench.make_photos(args.images)):
        files.append(str(photos / f'photo{i:04d}.jpg'))
        image.save(files[-1], quality=90)
    captions = [f'{template.format(label)} номер {i}' for i, (template, label) in
                enumerate((t, c) for c in bench.CLASSES for t in bench.TEMPLATES)][:args.texts]
    captions += [f'фото номер {i}' for i in range(args.texts - len(captions))]
    image_bodies = [{'input': 'data:image/jpeg;base64,' + base64.b64encode(open(f, 'rb').read()).decode(),
                     'modality': 'image'} for f in files]
    text_bodies = [{'input': caption} for caption in captions]
    load_start = os.getloadavg()[0]

    clip, processor = ruclip.load(str(folder), dtype='fp32', backend='torch')
    predictor = ruclip.Predictor(clip, processor, 'cpu', quiet=True)
    predictor.get_image_latents(files[:8])
    predictor.get_caption_latents(captions[:64])  # warm-up, and the tokenizer's cache, as the server's
    servers = {'batched': start_server(folder, 32), 'one_at_a_time': start_server(folder, 1)}
    rounds = {(name, kind): [] for name in ('library', *servers) for kind in ('images', 'texts')}
    try:
        for _, url in servers.values():  # warm-up
            asyncio.run(clients(url, image_bodies[:args.clients] + text_bodies[:args.clients], args.clients))
        for _ in range(args.repeats):  # alternating, so that a change of load touches all alike
            for kind, run in (('images', lambda: predictor.get_image_latents(files)),
                              ('texts', lambda: predictor.get_caption_latents(captions))):
                started = time.perf_counter()
                run()
                count = len(files) if kind == 'images' else len(captions)
                rounds['library', kind].append(dict(per_s=count / (time.perf_counter() - started)))
                for name, (_, url) in servers.items():
                    rounds[name, kind].append(measure(url, image_bodies if kind == 'images' else text_bodies,
                                                      args.clients))
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(timeout=60)
    gain = tower_batching_gain(clip, processor, files, 32)
    ceiling = caption_batch_ceiling(predictor, captions, args.clients)
    library = {kind: best(rounds['library', kind])['per_s'] for kind in ('images', 'texts')}
    batched = {kind: best(rounds['batched', kind]) for kind in ('images', 'texts')}
    one_at_a_time = {kind: best(rounds['one_at_a_time', kind]) for kind in ('images', 'texts')}

    print(f'`python benchmarks/bench_serve.py --images {args.images} --texts {args.texts} --clients {args.clients} '
          f'--repeats {args.repeats}`, '
          f'ruclip-vit-base-patch32-224 (random weights), PyTorch fp32; {bench.machine()}; '
          f'1-minute load average {load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end.\n')
    print('| | Predictor (one call) | API, batching | API, one request at a time | batching / Predictor '
          '| batching / one at a time |')
    print('|---|---|---|---|---|---|')
    for kind, unit in (('images', 'images'), ('texts', 'captions')):
        b, o = batched[kind], one_at_a_time[kind]
        print(f'| {len(files) if kind == "images" else len(captions)} {unit}, 1 per request | '
              f'{library[kind]:.1f}/s | {b["per_s"]:.1f}/s (p50 {b["p50_ms"]:.0f} ms, p99 {b["p99_ms"]:.0f} ms) | '
              f'{o["per_s"]:.1f}/s (p50 {o["p50_ms"]:.0f} ms, p99 {o["p99_ms"]:.0f} ms) | '
              f'{b["per_s"] / library[kind]:.2f}x | {b["per_s"] / o["per_s"]:.2f}x |')
    print(f'\nThe image tower alone on decoded inputs, 32 per forward pass against one at a time: {gain:.2f}x '
          f'(what batching can gain at most over one request at a time on this machine).')
    print(f'The Predictor on the captions {args.clients} at a time (the most {args.clients} one-caption clients can '
          f'put in a batch) against one call on them all: {ceiling:.2f}x (what the API can reach at most against '
          f'the Predictor, before any HTTP work).')


if __name__ == '__main__':
    main()
