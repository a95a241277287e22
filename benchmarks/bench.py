"""Speed of ruclip against the original ruclip==0.0.2, same random weights, in one run.

    python benchmarks/bench.py                          # base-patch32-384, two rounds (~5 min)
    python benchmarks/bench.py --quick                  # the same, one round, 32 photos
    python benchmarks/bench.py --models all --compile   # the six architectures (long)

For each model: load time and peak RSS (fresh processes), text latents/s for 100 classes x 6
templates, image-tower images/s and FLOP/s (against a plain matmul of the same dtype, measured in
the same run), and zero-shot end to end (640x480 PIL photos -> labels, 10 classes x 6 templates),
ours in fp32 and bf16 against the original in fp32. Each measurement alternates ours and the
original, `--repeats` rounds, best round kept. The original is pip-installed from PyPI into
~/.cache (tests/original.py), never copied here. Checkpoints are full-size openai-CLIP shapes with
random weights (we cannot download the real ones here), written once under --workdir.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault('TQDM_DISABLE', '1')  # the original's progress bars (its run() needs quiet=False)

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / 'tests'))

import ruclip  # noqa: E402

BASE = dict(embed_dim=512, vision_width=768, vision_layers=12, transformer_width=512, transformer_heads=8,
            transformer_layers=12)
LARGE = dict(embed_dim=768, vision_width=1024, vision_layers=24, transformer_width=768, transformer_heads=12,
             transformer_layers=12)
ARCHITECTURES = {  # openai-CLIP shapes (assumed; the real configs are on the Hub)
    'ruclip-vit-base-patch32-224': dict(BASE, image_resolution=224, vision_patch_size=32),
    'ruclip-vit-base-patch16-224': dict(BASE, image_resolution=224, vision_patch_size=16),
    'ruclip-vit-large-patch14-224': dict(LARGE, image_resolution=224, vision_patch_size=14),
    'ruclip-vit-base-patch32-384': dict(BASE, image_resolution=384, vision_patch_size=32),
    'ruclip-vit-large-patch14-336': dict(LARGE, image_resolution=336, vision_patch_size=14),
    'ruclip-vit-base-patch16-384': dict(BASE, image_resolution=384, vision_patch_size=16),
}
for _config in ARCHITECTURES.values():
    _config.update(context_length=77, vocab_size=49408)

CLASSES = [  # CIFAR-100, in Russian
    'яблоко', 'аквариумная рыбка', 'младенец', 'медведь', 'бобр', 'кровать', 'пчела', 'жук', 'велосипед',
    'бутылка', 'миска', 'мальчик', 'мост', 'автобус', 'бабочка', 'верблюд', 'банка', 'замок', 'гусеница',
    'корова', 'стул', 'шимпанзе', 'часы', 'облако', 'таракан', 'диван', 'краб', 'крокодил', 'чашка',
    'динозавр', 'дельфин', 'слон', 'камбала', 'лес', 'лиса', 'девочка', 'хомяк', 'дом', 'кенгуру',
    'клавиатура', 'лампа', 'газонокосилка', 'леопард', 'лев', 'ящерица', 'лобстер', 'мужчина', 'клён',
    'мотоцикл', 'гора', 'мышь', 'гриб', 'дуб', 'апельсин', 'орхидея', 'выдра', 'пальма', 'груша', 'пикап',
    'сосна', 'равнина', 'тарелка', 'мак', 'дикобраз', 'опоссум', 'кролик', 'енот', 'скат', 'дорога',
    'ракета', 'роза', 'море', 'тюлень', 'акула', 'землеройка', 'скунс', 'небоскрёб', 'улитка', 'змея',
    'паук', 'белка', 'трамвай', 'подсолнух', 'сладкий перец', 'стол', 'танк', 'телефон', 'телевизор',
    'тигр', 'трактор', 'поезд', 'форель', 'тюльпан', 'черепаха', 'гардероб', 'кит', 'ива', 'волк',
    'женщина', 'червь',
]
TEMPLATES = ruclip.predictor.DEFAULT_TEMPLATES


# ---------------------------------------------------------------------------------------------
# inputs: checkpoints, tokenizer, photos

def train_tokenizer(workdir: Path) -> Path:
    """A youtokentome bpe.model from a Russian corpus in which the prompts' words are frequent,
    so that, as with the real 49k-token model, common words are one or two tokens."""
    path = workdir / 'bpe.model'
    if not path.is_file():
        import youtokentome as yttm
        from helpers.texts import training_corpus
        rng = np.random.default_rng(0)
        lines = [template.format(label) for template in TEMPLATES for label in CLASSES for _ in range(20)]
        rng.shuffle(lines)
        corpus = workdir / 'corpus.txt'
        corpus.write_text(training_corpus() + '\n'.join(lines) + '\n', encoding='utf-8')
        yttm.BPE.train(data=str(corpus), model=str(path), vocab_size=8000, n_threads=1)
    return path


def build_checkpoint(workdir: Path, name: str, bpe: Path) -> Path:
    folder = workdir / name
    if not (folder / 'pytorch_model.bin').is_file():
        folder.mkdir(parents=True, exist_ok=True)
        print(f'  writing a random {name} checkpoint to {folder}', flush=True)
        torch.manual_seed(0)
        model = ruclip.CLIP(**ARCHITECTURES[name])
        torch.save(model.state_dict(), folder / 'pytorch_model.bin.tmp')
        os.replace(folder / 'pytorch_model.bin.tmp', folder / 'pytorch_model.bin')
        del model
    (folder / 'config.json').write_text(json.dumps(ARCHITECTURES[name], indent=2))
    (folder / 'bpe.model').write_bytes(bpe.read_bytes())
    return folder


def make_photos(n: int, width: int = 640, height: int = 480, seed: int = 0):
    """Photo-like RGB images: smooth random colour fields with texture, all different."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    photos = []
    for _ in range(n):
        coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((width, height),
                                                                                          Image.BICUBIC)
        noise = rng.normal(0, 12, (height, width, 3))
        photos.append(Image.fromarray(np.clip(np.asarray(coarse) + noise, 0, 255).astype(np.uint8)))
    return photos


# ---------------------------------------------------------------------------------------------
# measurements

def synchronize():
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def best_time(fn, repeats: int):
    """(best seconds, last result)."""
    best, result = float('inf'), None
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        result = fn()
        synchronize()
        best = min(best, time.perf_counter() - start)
    return best, result


def interleaved(fns: dict, repeats: int) -> dict:
    """{name: (best seconds, result)}, running the candidates in turn, `repeats` rounds."""
    times = {name: float('inf') for name in fns}
    results = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            synchronize()
            start = time.perf_counter()
            results[name] = fn()
            synchronize()
            times[name] = min(times[name], time.perf_counter() - start)
    return {name: (times[name], results[name]) for name in fns}


def matmul_rate(dtype: torch.dtype, n: int = 2048, repeats: int = 5, device: str = 'cpu') -> float:
    """FLOP/s of a plain n x n x n matmul in `dtype` (best of `repeats`)."""
    a, b = torch.randn(n, n, device=device).to(dtype), torch.randn(n, n, device=device).to(dtype)
    a @ b
    seconds, _ = best_time(lambda: a @ b, repeats)
    return 2 * n ** 3 / seconds


def tower_flops(config: dict, batch: int, class_token_last: bool = False) -> int:
    """Multiply-adds x 2 of the image tower: patch embedding, layers (projections and attention), proj.

    class_token_last: ours, whose last block computes the class token's output only (keys and
    values of all tokens, but one query, one out_proj row and one MLP row per image).
    """
    width, grid = config['vision_width'], config['image_resolution'] // config['vision_patch_size']
    tokens, patch_dim = grid ** 2 + 1, 3 * config['vision_patch_size'] ** 2
    per_layer = 2 * tokens * width * (3 * width + width + 8 * width) + 2 * 2 * tokens * tokens * width
    skipped = 0
    if class_token_last:  # q, out_proj and the MLP for tokens - 1 rows, and their attention
        skipped = (tokens - 1) * (2 * width * (width + width + 8 * width) + 2 * 2 * tokens * width)
    return batch * (2 * grid ** 2 * patch_dim * width + config['vision_layers'] * per_layer - skipped
                    + 2 * width * config['embed_dim'])


LOAD_SCRIPT = r'''
import json, sys, time
sys.path[:0] = [sys.argv[1], sys.argv[1] + '/tests']
import torch

def peak_mb():  # this process's high-water RSS (ru_maxrss would include the parent's, inherited at fork)
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith('VmHWM')) / 1024

which, folder, dtype = sys.argv[2], sys.argv[3], sys.argv[4]
if which == 'original':
    from helpers.original import load_original
    original = load_original()
else:
    import ruclip
base_mb = peak_mb()
start = time.perf_counter()
if which == 'original':
    model = original.model.CLIP.from_pretrained(folder).eval()
    processor = original.processor.RuCLIPProcessor.from_pretrained(folder)
else:
    model, processor = ruclip.load(folder, dtype=getattr(torch, dtype))
load_s = time.perf_counter() - start
load_mb = peak_mb()
size = model.visual.input_resolution
with torch.no_grad():  # first use: one image and one text (pages of a mapped checkpoint come in here)
    model.encode_image(torch.zeros(1, 3, size, size))
    model.encode_text(processor(text=['кошка'])['input_ids'])
first_use_s = time.perf_counter() - start
print(json.dumps(dict(load_s=load_s, first_use_s=first_use_s, base_mb=base_mb, load_mb=load_mb,
                      first_use_mb=peak_mb())))
'''


def measure_load(folder: Path, repeats: int) -> dict:
    """Load time and peak RSS in fresh processes, alternating the original and ours (the file is
    read once beforehand, so every process finds it in the page cache)."""
    with open(folder / 'pytorch_model.bin', 'rb') as f:
        while f.read(1 << 24):
            pass
    runs = {'original': [], 'ours fp32': [], 'ours bf16': []}
    for _ in range(repeats):
        for name in runs:
            which, dtype = ('original', 'float32') if name == 'original' else ('ours', name.split()[1])
            dtype = {'fp32': 'float32', 'bf16': 'bfloat16'}.get(dtype, dtype)
            out = subprocess.run([sys.executable, '-c', LOAD_SCRIPT, str(ROOT), which, str(folder), dtype],
                                 capture_output=True, text=True, env=dict(os.environ, TQDM_DISABLE='1'))
            if out.returncode != 0:
                raise RuntimeError(f'load of {folder} by {name} failed:\n{out.stderr[-3000:]}')
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {name: min(r, key=lambda x: x['load_s']) | {'peak_load_mb': max(x['load_mb'] for x in r),
                                                         'peak_first_use_mb': max(x['first_use_mb'] for x in r)}
            for name, r in runs.items()}


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1).min())


def bench_model(name: str, folder: Path, args, original) -> dict:
    config = ARCHITECTURES[name]
    result = dict(model=name)
    sections = args.sections

    if 'load' in sections:
        print('  load (fresh processes) ...', flush=True)
        result['load'] = measure_load(folder, args.repeats)
    if not sections & {'text', 'tower', 'e2e'}:
        return result

    device = args.device
    theirs = original.model.CLIP.from_pretrained(str(folder)).eval().to(device)
    their_processor = original.processor.RuCLIPProcessor.from_pretrained(str(folder))
    ours = {dtype: ruclip.load(str(folder), device=device, dtype=dtype) for dtype in args.dtypes}
    predictors = {f'ours {d}': ruclip.Predictor(m, p, device, quiet=True) for d, (m, p) in ours.items()}
    their_predictor = original.predictor.Predictor(theirs, their_processor, device)  # quiet=False: see TQDM_DISABLE
    photos = make_photos(args.images)

    if 'text' in sections:
        print('  text latents, 100 classes x 6 templates ...', flush=True)
        classes = CLASSES[:100]
        lengths = [len(their_processor.encode_text(t).nonzero()) for t in
                   (tpl.format(c) for tpl in TEMPLATES for c in classes)]
        fns = {'original': lambda: their_predictor.get_text_latents(classes)}
        fns.update({k: (lambda p=p: p.get_text_latents(classes)) for k, p in predictors.items()})
        with torch.no_grad():
            runs = interleaved(fns, args.repeats)
        reference = runs['original'][1]
        result['text'] = dict(
            texts=600, tokens_mean=float(np.mean(lengths)), tokens_max=int(max(lengths)),
            per_s={k: 600 / t for k, (t, _) in runs.items()},
            max_abs_diff_fp32=float((runs['ours fp32'][1] - reference).abs().max()) if 'ours fp32' in runs else None,
            cosine_to_fp32={k: cosine(v[1], runs['ours fp32'][1]) for k, v in runs.items() if k != 'original'},
        )

    if 'tower' in sections:
        batches = {k: p.batch_size for k, p in predictors.items()}  # each dtype at the batch its Predictor picks
        print(f'  image tower, batches of {batches} ...', flush=True)
        pixel_values = ours['fp32'][1](images=(photos * (max(batches.values()) // len(photos) + 1)))['pixel_values']
        pixel_values = pixel_values.to(device)
        fns = {'original': lambda: theirs.encode_image(pixel_values[:batches['ours fp32']])}
        fns.update({f'ours {d}': (lambda m=m, n=batches[f'ours {d}']: m.encode_image(pixel_values[:n]))
                    for d, (m, _) in ours.items()})
        if args.compile:
            for d, (m, _) in ours.items():
                if d != 'fp32':
                    n = batches[f'ours {d}']
                    compiled = torch.compile(m.visual, dynamic=False)
                    start = time.perf_counter()
                    with torch.inference_mode():
                        compiled(pixel_values[:n].to(m.dtype))
                    result.setdefault('compile_s', {})[d] = time.perf_counter() - start
                    fns[f'ours {d} compiled'] = lambda c=compiled, m=m, n=n: c(pixel_values[:n].to(m.dtype))
                    batches[f'ours {d} compiled'] = n
        batches['original'] = batches['ours fp32']
        matmuls = {dtype: plain_matmul(dtype, device) for dtype in {'fp32'} | {_dtype_of(k) for k in fns}}
        fns.update({f'matmul {dtype}': fn for dtype, (fn, _) in matmuls.items()})
        with torch.inference_mode():
            runs = interleaved(fns, args.repeats)
        matmul_gflops = {dtype: flops / runs[f'matmul {dtype}'][0] / 1e9 for dtype, (_, flops) in matmuls.items()}
        runs = {k: v for k, v in runs.items() if not k.startswith('matmul')}
        per_image = {k: tower_flops(config, 1, class_token_last=k != 'original') for k in runs}
        result['tower'] = dict(batch=batches, gflop_per_image=per_image['original'] / 1e9,
                               gflop_per_image_ours=per_image['ours fp32'] / 1e9,
                               images_per_s={k: batches[k] / t for k, (t, _) in runs.items()},
                               gflops={k: per_image[k] * batches[k] / t / 1e9 for k, (t, _) in runs.items()},
                               matmul_gflops=matmul_gflops)

    if 'e2e' in sections:
        classes = CLASSES[:10]
        print(f'  end to end, {len(photos)} photos, 10 classes x 6 templates ...', flush=True)

        def zero_shot(predictor):
            return predictor.run(photos, predictor.get_text_latents(classes))

        fns = {'original': lambda: zero_shot(their_predictor)}
        fns.update({k: (lambda p=p: zero_shot(p)) for k, p in predictors.items()})
        if args.compile:
            for d, (m, p) in ours.items():
                if d != 'fp32':
                    predictor = ruclip.Predictor(m, p, device, quiet=True, compile=True)
                    zero_shot(predictor)  # compiles
                    fns[f'ours {d} compiled'] = lambda p=predictor: zero_shot(p)
        with torch.no_grad():
            runs = interleaved(fns, args.repeats)
            latents = {k: p.get_image_latents(photos) for k, p in predictors.items()}
            logits = latents['ours fp32'] @ predictors['ours fp32'].get_text_latents(classes).t()
        top2 = logits.topk(2, dim=1).values
        margins = (top2[:, 0] - top2[:, 1]).tolist()  # how far each photo is from a tie, in cosine
        labels = runs['original'][1]
        result['e2e'] = dict(
            images=len(photos),
            images_per_s={k: len(photos) / t for k, (t, _) in runs.items()},
            same_labels_as_original={k: sum(a == b for a, b in zip(v[1], labels)) for k, v in runs.items()},
            margins_of_changed={k: [margins[i] for i, (a, b) in enumerate(zip(v[1], labels)) if a != b]
                                for k, v in runs.items()},
            median_margin=float(np.median(margins)),
            image_cosine_to_fp32={k: cosine(v, latents['ours fp32']) for k, v in latents.items()},
        )
        if args.draft:
            result['draft'] = measure_draft(ours[args.dtypes[0]], args)
    return result


DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def plain_matmul(dtype: str, device: str, n: int = 2048, count: int = 8):
    """(fn, flops): `count` plain n x n x n matmuls in `dtype`, the reference rate."""
    if device != 'cpu':
        n, count = 8192, 20
    a = torch.randn(n, n, device=device).to(DTYPES[dtype])
    b = torch.randn(n, n, device=device).to(DTYPES[dtype])

    def fn():
        for _ in range(count):
            a @ b
    return fn, 2 * n ** 3 * count


def _dtype_of(name: str) -> str:
    return 'bf16' if 'bf16' in name else 'fp16' if 'fp16' in name else 'fp32'


def measure_draft(model_and_processor, args) -> dict:
    """JPEG draft mode on 2592x1944 (5 Mpx) JPEG bytes: preprocessing speed and latents."""
    import io
    model, processor = model_and_processor
    blobs = []
    for photo in make_photos(16, 2592, 1944, seed=1):
        buffer = io.BytesIO()
        photo.save(buffer, format='JPEG', quality=90)
        blobs.append(buffer.getvalue())
    from ruclip._batches import image_batches
    out = {}
    for draft in (False, True):
        def prepare():
            return torch.cat(list(image_batches(blobs, processor.image_transform, 16, num_workers=0, draft=draft)))
        seconds, pixels = best_time(prepare, args.repeats)
        out['draft' if draft else 'full'] = dict(images_per_s=len(blobs) / seconds, pixels=pixels)
    with torch.inference_mode():
        full, drafted = (model.encode_image(out[k]['pixels']) for k in ('full', 'draft'))
    diff = (out['full']['pixels'] - out['draft']['pixels']).abs()
    return dict(images=len(blobs), size='2592x1944 JPEG q90',
                images_per_s={k: v['images_per_s'] for k, v in out.items()},
                pixel_mean_abs_diff=float(diff.mean()), latent_cosine_min=cosine(full, drafted))


# ---------------------------------------------------------------------------------------------
# report

def _rates_text(rates: dict) -> str:
    return ', '.join(f'{name} {rate / 1e9:.0f} GFLOP/s' for name, rate in rates.items())


def report(results: list, rates: dict, args) -> str:
    device = torch.cuda.get_device_name() if args.device.startswith('cuda') else f'{torch.get_num_threads()} threads'
    lines = [f'machine: {machine()}', f'torch {torch.__version__} on {args.device} ({device}); best plain matmul: '
             f'{_rates_text(rates)}',
             f'repeats {args.repeats} (best kept); 1-minute load average {args.load_at_start:.2f} at the start, '
             f'{os.getloadavg()[0]:.2f} at the end', '']
    for r in results:
        lines.append(f'## {r["model"]}')
        if 'load' in r:
            o = r['load']['original']
            for k, v in r['load'].items():
                lines.append(f'load {k:10s}: {v["load_s"]:6.2f} s ({v["load_s"] / o["load_s"]:.2f}x), peak RSS '
                             f'{v["peak_load_mb"]:7.0f} MB ({v["peak_load_mb"] / o["peak_load_mb"]:.2f}x); with first '
                             f'use {v["first_use_s"]:6.2f} s, {v["peak_first_use_mb"]:7.0f} MB '
                             f'({v["peak_first_use_mb"] / o["peak_first_use_mb"]:.2f}x); process after imports '
                             f'{v["base_mb"]:.0f} MB')
        if 'text' in r:
            t = r['text']
            o = t['per_s']['original']
            lines.append(f'text ({t["texts"]} texts, {t["tokens_mean"]:.1f} tokens on average, {t["tokens_max"]} max): '
                         + ', '.join(f'{k} {v:.0f}/s ({v / o:.1f}x)' for k, v in t['per_s'].items())
                         + f'; fp32 max |diff| {t["max_abs_diff_fp32"]:.1e}; cosine to fp32 '
                         + ', '.join(f'{k} {v:.5f}' for k, v in t['cosine_to_fp32'].items()))
        if 'tower' in r:
            t = r['tower']
            o = t['images_per_s']['original']
            lines.append(f'tower ({t["gflop_per_image"]:.1f} GFLOP/image, ours {t["gflop_per_image_ours"]:.1f}; '
                         f'n^3 matmul, n = 2048 on CPU and 8192 on GPU, in the same rounds: '
                         + ', '.join(f'{k} {v:.0f}' for k, v in t['matmul_gflops'].items()) + ' GFLOP/s): ' + ', '.join(
                             f'{k} {v:.1f} img/s at batch {t["batch"][k]} ({v / o:.2f}x, '
                             f'{t["gflops"][k]:.0f} GFLOP/s = {t["gflops"][k] / t["matmul_gflops"][_dtype_of(k)]:.0%} '
                             f'of matmul)'
                             for k, v in t['images_per_s'].items()))
            if 'compile_s' in r:
                lines.append('compile time: ' + ', '.join(f'{k} {v:.0f} s' for k, v in r['compile_s'].items()))
        if 'e2e' in r:
            e = r['e2e']
            o = e['images_per_s']['original']
            lines.append(f'end to end ({e["images"]} photos 640x480, 10 classes x 6 templates): ' + ', '.join(
                f'{k} {v:.2f} img/s ({v / o:.2f}x, {e["same_labels_as_original"][k]}/{e["images"]} labels as the '
                f'original)' for k, v in e['images_per_s'].items()) + '; image latents cosine to fp32 '
                + ', '.join(f'{k} {v:.5f}' for k, v in e['image_cosine_to_fp32'].items()))
            changed = {k: v for k, v in e['margins_of_changed'].items() if v}
            if changed:
                lines.append('  labels that differ from the original sit at near-ties: fp32 top-2 cosine margins '
                             + ', '.join(f'{k} ' + ', '.join(f'{m:.1e}' for m in v) for k, v in changed.items())
                             + f' (median margin over the photos {e["median_margin"]:.5f})')
        if 'draft' in r:
            d = r['draft']
            lines.append(f'JPEG draft ({d["images"]} x {d["size"]}): preprocessing {d["images_per_s"]["full"]:.1f} -> '
                         f'{d["images_per_s"]["draft"]:.1f} img/s; pixels mean |diff| {d["pixel_mean_abs_diff"]:.4f}; '
                         f'latent cosine min {d["latent_cosine_min"]:.5f}')
        lines.append('')
    return '\n'.join(lines)


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            model = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    from ruclip._device import cpu_class

    memory = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2 ** 30
    return (f'{model} (CPU class {cpu_class()}, torch capability {torch.backends.cpu.get_cpu_capability()}), '
            f'{os.cpu_count()} cores, {memory:.0f} GiB, {platform.system()} {platform.release()}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', default=None,
                        help="comma-separated names or 'all' (default: ruclip-vit-base-patch32-384)")
    parser.add_argument('--quick', action='store_true', help='one round per measurement and 32 photos')
    parser.add_argument('--repeats', type=int, default=2, help='rounds per measurement, best kept (default 2)')
    parser.add_argument('--sections', default='load,text,tower,e2e', help='any of load,text,tower,e2e')
    parser.add_argument('--dtypes', default='fp32,bf16', help='our dtypes (fp32 first)')
    parser.add_argument('--images', type=int, default=64, help='photos for end to end (default 64)')
    parser.add_argument('--compile', action='store_true', help='also our bf16 tower under torch.compile')
    parser.add_argument('--device', default='cpu', help="where the models run: cpu (default) or cuda")
    parser.add_argument('--draft', action='store_true', help='also measure JPEG draft mode')
    parser.add_argument('--workdir', default=str(Path.home() / '.cache' / 'ruclip-bench'),
                        help='where checkpoints are written (default ~/.cache/ruclip-bench)')
    parser.add_argument('--json', default=None, help='also write the raw results to this file')
    args = parser.parse_args(argv)
    names = list(ARCHITECTURES) if args.models == 'all' else (args.models or 'ruclip-vit-base-patch32-384').split(',')
    for name in names:
        if name not in ARCHITECTURES:
            parser.error(f'Unknown model {name!r}; choose from {list(ARCHITECTURES)} or all')
    args.sections = set(args.sections.split(','))
    args.dtypes = args.dtypes.split(',')
    if args.dtypes[0] != 'fp32':
        parser.error('--dtypes must start with fp32 (the reference for cosines)')
    if args.quick:
        args.repeats, args.images = 1, min(args.images, 32)
    workdir = Path(args.workdir).expanduser()
    workdir.mkdir(parents=True, exist_ok=True)

    from helpers.original import load_original
    original = load_original()
    bpe = train_tokenizer(workdir)
    # the plain matmul rate of each dtype measured (a bf16 one takes a minute on a CPU without bf16 units)
    measured = ['fp32'] + [name for name in ('bf16', 'fp16') if name in args.dtypes]
    rates = {name: matmul_rate(DTYPES[name], device=args.device) for name in measured}
    args.load_at_start = os.getloadavg()[0]
    print(f'{machine()}; load average {args.load_at_start:.2f}; matmul {_rates_text(rates)}', flush=True)
    results = []
    for name in names:
        print(f'{name}:', flush=True)
        folder = build_checkpoint(workdir, name, bpe)
        results.append(bench_model(name, folder, args, original))
        print(report(results[-1:], rates, args).split('\n\n', 1)[1], flush=True)
    for key in measured:  # the machine may have changed
        rates[key] = max(rates[key], matmul_rate(DTYPES[key], device=args.device))
    text = report(results, rates, args)
    print('\n' + text)
    if args.json:
        Path(args.json).write_text(json.dumps(dict(machine=machine(), rates=rates, results=results), indent=1))


if __name__ == '__main__':
    main()
