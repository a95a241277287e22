"""Training speed: pairs/s of ruclip's fine-tuning step against open_clip's on the same model.

    python benchmarks/bench_train.py [--model ruclip-vit-base-patch32-384] [--batch 16] [--steps 2]

Both sides hold the same random weights of the architecture (openai-CLIP names; open_clip's CLIP
takes our state dict), the same batch of images and Russian captions, AdamW over the same
parameters, and run fp32 and bf16 autocast (bf16 only where the CPU computes it natively):
AdamW: ours is the library's (fused where torch has it, weight decay on matrices); open_clip's is
torch.optim.AdamW's default, as its training script makes it.
- full: both towers train. Ours: ruclip.training's Trainee + clip_loss (the text tower runs up to
  the batch's longest caption); open_clip: model(images, text) + ClipLoss (77 positions).
- lock-image: the image tower frozen. Ours: image latents computed once, a step runs the text tower
  only (ruclip finetune --lock-image); open_clip's --lock-image: the frozen tower still runs forward
  in every step.
Each step is timed after one warm-up step, ours and open_clip's alternating; the figure is the
best of --steps. Prints a Markdown table for benchmarks/RESULTS.md.
"""
import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'benchmarks'))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import bench  # noqa: E402  (puts the repository first on sys.path)
from ruclip import CLIP, RuCLIPProcessor  # noqa: E402
from ruclip._device import cpu_class, cpu_computes  # noqa: E402
from ruclip.training import TrainingOptions  # noqa: E402
from ruclip.training.schedule import make_optimizer  # noqa: E402  (the library's AdamW, fused where it can)
from ruclip.training.loss import clip_loss  # noqa: E402
from ruclip.training.towers import Trainee  # noqa: E402

CAPTIONS = ['красный круг на сером фоне', 'синий квадрат', 'фото, на котором изображено жёлтый треугольник',
            'зелёный круг и синий квадрат рядом', 'кот спит на диване', 'город ночью, огни и машины']


def open_clip_model(clip: CLIP):
    import open_clip
    c = clip.config
    vision = open_clip.model.CLIPVisionCfg(layers=c.vision_layers, width=c.vision_width, patch_size=c.vision_patch_size,
                                           image_size=c.image_resolution)
    text = open_clip.model.CLIPTextCfg(context_length=c.context_length, vocab_size=c.vocab_size,
                                       width=c.transformer_width, heads=c.transformer_heads,
                                       layers=c.transformer_layers, pool_type='eos', eos_id=clip.eos_id)
    model = open_clip.model.CLIP(c.embed_dim, vision, text, quick_gelu=True)
    missing, unexpected = model.load_state_dict(clip.state_dict(), strict=False)
    if missing or unexpected:
        raise RuntimeError(f'open_clip CLIP does not take our state dict: {missing} {unexpected}')
    return model.train()


def ours_step(clip, mode, pixels, latents, ids, autocast):
    trainee = Trainee(clip, 'latents' if mode == 'lock-image' else 'pixels', 'tokens')
    optimizer = make_optimizer([(n, p) for n, p in clip.named_parameters() if p.requires_grad],
                           TrainingOptions(model='', train='', out='', lr=1e-5))
    groups = torch.arange(len(ids))

    def step():
        with autocast():
            image_latents, text_latents, scale = trainee(latents if mode == 'lock-image' else pixels, ids)
        loss = clip_loss(image_latents, text_latents, scale, groups)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())
    return step


def open_clip_step(model, pixels, padded_ids, autocast):
    from open_clip.loss import ClipLoss
    loss_fn = ClipLoss()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step():
        with autocast():
            image_features, text_features, scale = model(pixels, padded_ids)
        loss = loss_fn(F.normalize(image_features.float(), dim=-1), F.normalize(text_features.float(), dim=-1),
                       scale.float())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())
    return step


def timed(steps, repeats):
    """{name: best seconds per step}, each step function warmed up once, names alternating."""
    for step in steps.values():
        step()
    best = {name: float('inf') for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', default='ruclip-vit-base-patch32-384', choices=list(bench.ARCHITECTURES))
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--steps', type=int, default=2)
    parser.add_argument('--modes', nargs='+', choices=('full', 'lock-image'), default=['full', 'lock-image'])
    parser.add_argument('--precision', nargs='+', choices=('fp32', 'bf16'), default=['fp32', 'bf16'],
                        help='bf16 runs only where the CPU computes it natively')
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    processor = RuCLIPProcessor(ROOT / 'tests' / 'data' / 'bpe_600.model')
    config = bench.ARCHITECTURES[args.model]
    captions = [CAPTIONS[i % len(CAPTIONS)] for i in range(args.batch)]
    rows = [processor.tokenize(caption) for caption in captions]
    ids = processor.pad(rows, length=max(map(len, rows)))  # ours: cut to the longest caption
    padded = processor.pad(rows)  # open_clip: all 77 positions
    pixels = torch.randn(args.batch, 3, config['image_resolution'], config['image_resolution'])
    precisions = [p for p in args.precision if p == 'fp32' or cpu_computes(torch.bfloat16)]
    results = []
    for precision in precisions:
        def autocast():
            return torch.autocast('cpu', dtype=torch.bfloat16, enabled=precision == 'bf16')
        for mode in args.modes:
            ours = CLIP(**config).train()
            theirs = open_clip_model(ours)
            if mode == 'lock-image':
                ours.visual.requires_grad_(False)
                theirs.lock_image_tower()
                with torch.inference_mode(), autocast():
                    latents = F.normalize(ours.encode_image(pixels).float(), dim=-1)
                latents = latents.clone()
            else:
                latents = None
            seconds = timed({'ours': ours_step(ours, mode, pixels, latents, ids, autocast),
                             'open_clip': open_clip_step(theirs, pixels, padded, autocast)}, args.steps)
            results.append((precision, mode, args.batch / seconds['ours'], args.batch / seconds['open_clip']))
            print(f'{precision} {mode}: ours {results[-1][2]:.1f} pairs/s, open_clip {results[-1][3]:.1f} pairs/s',
                  file=sys.stderr)
    print(f'{args.model}, random weights, batch {args.batch}, best of {args.steps} steps after a warm-up, '
          f'CPU class {cpu_class()}, {torch.get_num_threads()} threads\n')
    print('| precision | mode | ours pairs/s | open_clip pairs/s | ours / open_clip |')
    print('|---|---|---|---|---|')
    for precision, mode, ours, theirs in results:
        print(f'| {precision} | {mode} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f}x |')


if __name__ == '__main__':
    main()
