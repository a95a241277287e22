"""Ours against the peers a user would pick instead, same random full-size weights, in one run.

    python benchmarks/bench_peers.py                    # base-patch32-384, 2 rounds (~8 min on 2 cores)
    python benchmarks/bench_peers.py --repeats 1        # one round

Candidates: the original ruclip==0.0.2 (fp32, the baseline), ours on PyTorch (fp32, bf16) and on
OpenVINO (fp32, bf16, int8), transformers' CLIPModel built by ruclip.to_transformers (sdpa attention,
its own exported tokenizer with dynamic padding and an attention mask: its best form) and open_clip's
CLIP class with the same architecture (QuickGELU, text pool_type='eos', eos_id=3) holding our state
dict. bf16 rows only where ruclip._device.cpu_class() reports bf16 units (AMX or AVX512-BF16).

Sections, each alternating the candidates, best round kept:
  tower: encode_image on one batch of pixel tensors prepared once (ours' preprocessing);
  text:  100 classes x 6 Russian templates -> class latents, through each candidate's own tokenizer
         (open_clip has none for RuCLIP: it is fed our processor's input_ids, padded to 77 as it expects);
  e2e:   PIL photos 640x480 -> labels (10 classes x 6 templates), each with its own preprocessing
         (open_clip: open_clip.transform.image_transform; transformers: its CLIPImageProcessor).
Before timing, each peer's fp32 latents are checked against ours (cosine, reported); a peer that does
not match is reported and left out of the timings rather than timed computing something else.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault('TQDM_DISABLE', '1')
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import bench  # noqa: E402  (puts the repository first on sys.path)
import ruclip  # noqa: E402
from ruclip._device import cpu_class  # noqa: E402

MIN_COSINE = 0.9999


def cosine(a, b) -> float:
    return float(torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1).min())


def normalised_class_latents(latents: torch.Tensor, n_templates: int, n_classes: int) -> torch.Tensor:
    """[templates x classes, D] prompt latents -> [classes, D], averaged over templates as ours does."""
    latents = latents.float().view(n_templates, n_classes, -1).mean(0)
    return latents / latents.norm(dim=-1, keepdim=True)


def features(out) -> torch.Tensor:
    """transformers' get_*_features: a tensor in 4.x, an output object in some 5.x releases."""
    if isinstance(out, torch.Tensor):
        return out
    return out.pooler_output


# ---------------------------------------------------------------------------------------------
# the peers

class HFPeer:
    """transformers.CLIPModel + CLIPProcessor from ruclip.to_transformers, sdpa, dynamic padding."""

    def __init__(self, clip, processor, dtype):
        model, self.processor = ruclip.to_transformers(clip, processor)
        try:
            model.set_attn_implementation('sdpa')
        except (AttributeError, ValueError):
            model.config._attn_implementation = 'sdpa'
        self.attention = model.config._attn_implementation
        self.model, self.dtype = model.to(dtype).eval(), dtype

    def encode_image(self, pixel_values):
        return features(self.model.get_image_features(pixel_values=pixel_values.to(self.dtype)))

    def encode_prompts(self, prompts):
        tokens = self.processor.tokenizer(prompts, padding=True, return_tensors='pt')
        return features(self.model.get_text_features(input_ids=tokens['input_ids'],
                                                     attention_mask=tokens['attention_mask']))

    def pixels(self, photos):
        return self.processor(images=photos, return_tensors='pt')['pixel_values']


class OpenCLIPPeer:
    """open_clip.model.CLIP of the same shape, holding our state dict (openai-CLIP names)."""

    def __init__(self, clip, processor, dtype):
        import open_clip
        from open_clip.transform import image_transform
        c = clip.config
        vision = open_clip.model.CLIPVisionCfg(layers=c.vision_layers, width=c.vision_width,
                                               patch_size=c.vision_patch_size, image_size=c.image_resolution)
        text = open_clip.model.CLIPTextCfg(context_length=c.context_length, vocab_size=c.vocab_size,
                                           width=c.transformer_width, heads=c.transformer_heads,
                                           layers=c.transformer_layers, pool_type='eos', eos_id=clip.eos_id)
        model = open_clip.model.CLIP(c.embed_dim, vision, text, quick_gelu=True)
        state = {k: v.float() for k, v in clip.state_dict().items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise RuntimeError(f'open_clip CLIP does not take our state dict: missing {missing}, '
                               f'unexpected {unexpected}')
        self.model, self.dtype, self.processor = model.to(dtype).eval(), dtype, processor
        self.transform = image_transform(c.image_resolution, is_train=False, mean=processor.mean,
                                         std=processor.std, interpolation='bilinear', resize_mode='shortest')

    def encode_image(self, pixel_values):
        return self.model.encode_image(pixel_values.to(self.dtype))

    def encode_prompts(self, prompts):
        return self.model.encode_text(self.processor(text=prompts)['input_ids'])

    def pixels(self, photos):
        return torch.stack([self.transform(photo) for photo in photos])


def peer_zero_shot(peer, photos, classes, batch: int):
    prompts = [t.format(c.lower()) for t in bench.TEMPLATES for c in classes]
    text = normalised_class_latents(peer.encode_prompts(prompts), len(bench.TEMPLATES), len(classes))
    labels = []
    for start in range(0, len(photos), batch):
        image = peer.encode_image(peer.pixels(photos[start:start + batch])).float()
        image = image / image.norm(dim=-1, keepdim=True)
        labels += (image @ text.t()).argmax(1).tolist()  # class indices, as Predictor.run
    return labels


# ---------------------------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', default='ruclip-vit-base-patch32-384', choices=list(bench.ARCHITECTURES))
    parser.add_argument('--workdir', default=str(Path.home() / '.cache' / 'ruclip-bench'))
    parser.add_argument('--repeats', type=int, default=2, help='rounds per section, best kept (default 2)')
    parser.add_argument('--batch', type=int, default=16, help='tower batch, and e2e batch for peers (default 16)')
    parser.add_argument('--classes', type=int, default=100, help='classes for the text section (default 100)')
    parser.add_argument('--e2e-images', type=int, default=32, help='photos end to end (default 32)')
    parser.add_argument('--ov-cache', default=None, help='OpenVINO cache folder (default: a fresh temporary one; '
                                                         'an int8 build then takes minutes)')
    parser.add_argument('--no-openvino', action='store_true', help='leave the OpenVINO rows out')
    args = parser.parse_args(argv)
    repeats = args.repeats
    load_at_start = os.getloadavg()[0]
    klass = cpu_class()
    print(f'{bench.machine()}; load average {load_at_start:.2f}', flush=True)
    workdir = Path(args.workdir).expanduser()
    workdir.mkdir(parents=True, exist_ok=True)
    folder = str(bench.build_checkpoint(workdir, args.model, bench.train_tokenizer(workdir)))

    from helpers.original import load_original
    original = load_original()
    theirs = original.model.CLIP.from_pretrained(folder).eval()
    their_processor = original.processor.RuCLIPProcessor.from_pretrained(folder)
    their_predictor = original.predictor.Predictor(theirs, their_processor, 'cpu')

    dtypes = {'fp32': torch.float32}
    if klass in ('AMX', 'AVX512-BF16'):
        dtypes['bf16'] = torch.bfloat16
    ours = {f'ours {d}': ruclip.load(folder, dtype=dt) for d, dt in dtypes.items()}
    if not args.no_openvino:
        os.environ['RUCLIP_OPENVINO_CACHE'] = args.ov_cache or tempfile.mkdtemp(prefix='ruclip-ov-peers-')
        for d, dt in list(dtypes.items()) + [('int8', 'int8')]:
            print(f'  openvino {d} ...', flush=True)
            ours[f'ours openvino {d}'] = ruclip.load(folder, backend='openvino', dtype=dt)
    clip, processor = ours['ours fp32']
    predictors = {k: ruclip.Predictor(m, p, quiet=True) for k, (m, p) in ours.items()}

    peers, left_out = {}, {}
    for kind, cls in (('transformers', HFPeer), ('open_clip', OpenCLIPPeer)):
        for d, dt in dtypes.items():
            try:
                peers[f'{kind} {d}'] = cls(clip, processor, dt)
            except Exception as error:  # reported in the table's notes, never timed
                left_out[f'{kind} {d}'] = f'{type(error).__name__}: {error}'

    photos = bench.make_photos(args.e2e_images)
    pixel_values = processor(images=photos[:args.batch])['pixel_values']
    classes = bench.CLASSES[:args.classes]
    prompts = [t.format(c.lower()) for t in bench.TEMPLATES for c in classes]

    # correctness first: each peer's fp32 latents against ours
    checks = {}
    with torch.inference_mode():
        our_image = clip.encode_image(pixel_values[:4])
        our_text = clip.encode_text(processor(text=prompts[:60])['input_ids'])
        for name, peer in list(peers.items()):
            image = cosine(peer.encode_image(pixel_values[:4]), our_image)
            text = cosine(peer.encode_prompts(prompts[:60]), our_text)
            checks[name] = (image, text)
            if name.endswith('fp32') and min(image, text) < MIN_COSINE:
                left_out[name] = f'latents do not match ours (cosine image {image:.5f}, text {text:.5f})'
                del peers[name]
    print('  cosine to ours fp32 (image / text): ' + ', '.join(f'{k} {a:.6f} / {b:.6f}' for k, (a, b) in
                                                                 checks.items()), flush=True)

    sections = {}
    print(f'  image tower, batch {args.batch} ...', flush=True)
    fns = {'original': lambda: theirs.encode_image(pixel_values)}
    fns.update({k: (lambda m=m: m.encode_image(pixel_values)) for k, (m, _) in ours.items()})
    fns.update({k: (lambda p=p: p.encode_image(pixel_values)) for k, p in peers.items()})
    with torch.inference_mode():
        sections['tower'] = bench.interleaved(fns, repeats)

    print(f'  text, {len(classes)} classes x {len(bench.TEMPLATES)} templates ...', flush=True)
    fns = {'original': lambda: their_predictor.get_text_latents(classes)}
    fns.update({k: (lambda p=p: p.get_text_latents(classes)) for k, p in predictors.items()})
    fns.update({k: (lambda p=p: normalised_class_latents(p.encode_prompts(prompts), len(bench.TEMPLATES),
                                                         len(classes))) for k, p in peers.items()})
    with torch.inference_mode():
        sections['text'] = bench.interleaved(fns, repeats)

    e2e_classes = bench.CLASSES[:10]
    print(f'  end to end, {len(photos)} photos, 10 classes x 6 templates ...', flush=True)
    fns = {'original': lambda: their_predictor.run(photos, their_predictor.get_text_latents(e2e_classes))}
    fns.update({k: (lambda p=p: p.run(photos, p.get_text_latents(e2e_classes))) for k, p in predictors.items()})
    fns.update({k: (lambda p=p: peer_zero_shot(p, photos, e2e_classes, args.batch)) for k, p in peers.items()})
    with torch.no_grad():
        sections['e2e'] = bench.interleaved(fns, repeats)

    print(report(sections, checks, left_out, peers, args, klass, load_at_start, repeats, len(prompts)))


def report(sections, checks, left_out, peers, args, klass, load_at_start, repeats, n_prompts) -> str:
    names = list(sections['tower'])
    peer_names = [n for n in names if n.split()[0] in ('transformers', 'open_clip')]

    def best_peer(section, name):
        dtype = name.split()[-1]
        same = [p for p in peer_names if p.split()[-1] == dtype] or peer_names
        return min(same, key=lambda p: sections[section][p][0]) if same else None

    labels = sections['e2e']['original'][1]
    command = 'python benchmarks/bench_peers.py' + (f' --repeats {args.repeats}' if args.repeats != 2 else '') + \
        (f' --ov-cache {args.ov_cache}' if args.ov_cache else '')
    lines = [f'`{command}`, {args.model} (random weights), {bench.machine()}; CPU class {klass};',
             f'torch {torch.__version__}; 1-minute load average {load_at_start:.2f} at the start, '
             f'{os.getloadavg()[0]:.2f} at the end; best of {repeats}. Seconds per section; in brackets the ratio '
             f'against the original fp32 / against the fastest peer of the same dtype (int8: of any dtype); '
             f'> 1 means faster.', '',
             f'| candidate | image tower, {args.batch} images | text, {n_prompts} prompts | zero-shot, '
             f'{len(labels)} photos | labels as the original |',
             '|---|---|---|---|---|']
    for name in names:
        cells = []
        for section in ('tower', 'text', 'e2e'):
            seconds = sections[section][name][0]
            cell = f'{seconds:.3f} s ({sections[section]["original"][0] / seconds:.2f}x'
            peer = best_peer(section, name)
            if peer is not None:
                cell += f' / {sections[section][peer][0] / seconds:.2f}x'
            cells.append(cell + ')')
        agree = sum(a == b for a, b in zip(sections['e2e'][name][1], labels))
        lines.append(f'| {name} | ' + ' | '.join(cells) + f' | {agree}/{len(labels)} |')
    lines.append('')
    lines.append('Latents against ours fp32 before timing (min cosine, image / text, 4 images, 60 prompts): '
                 + ', '.join(f'{k} {a:.6f} / {b:.6f}' for k, (a, b) in checks.items()) + '.')
    ours_fp32 = sections['text']['ours fp32'][1]
    lines.append('Text class latents against ours fp32 (timed results): ' + ', '.join(
        f'{k} {cosine(v[1], ours_fp32):.5f}' for k, v in sections['text'].items() if k != 'ours fp32') + '.')
    attention = [f'{k}: attention {p.attention}' for k, p in peers.items() if hasattr(p, 'attention')]
    if attention:
        lines.append('transformers ' + ', '.join(attention) + '.')
    for name, why in left_out.items():
        lines.append(f'Left out: {name}: {why}')
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
