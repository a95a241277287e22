"""Synthetic data for the evaluation tests: colour classes, and a tiny checkpoint trained to tell them apart."""
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

# (RGB, Russian word) per class; the trained checkpoint learns these words for these colours
COLOURS = [((220, 30, 30), 'красный'), ((30, 200, 40), 'зеленый'), ((30, 40, 220), 'синий'),
           ((230, 220, 30), 'желтый')]
CLASSNAMES = [word for _, word in COLOURS]


def colour_image(label: int, seed: int, size: int = 24) -> Image.Image:
    """A size x size image of class `label`'s colour with noise and a random darker square."""
    rng = np.random.default_rng(seed * 97 + label)
    pixels = np.array(COLOURS[label][0], dtype=np.float64) * rng.uniform(0.75, 1.0) + rng.normal(0, 18, (size, size, 3))
    x, y = rng.integers(0, size // 2, 2)
    pixels[y:y + size // 3, x:x + size // 3] *= 0.7
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


# a tiny architecture at 64 px: 16 patches, so training it takes seconds
SMALL_ARCHITECTURE = dict(image_resolution=64, vision_patch_size=16, vision_width=64, vision_layers=2, embed_dim=24,
                          context_length=77, transformer_width=32, transformer_heads=2, transformer_layers=2)


def train_colour_checkpoint(base: Path, folder: Path, steps: int = 300, seed: int = 0) -> Path:
    """A copy of checkpoint `base` in `folder` whose projections are trained (contrastive loss) so that
    colour_image(c) lies closest to prompts of the word COLOURS[c][1].

    The towers' trunks stay as they are: their outputs are computed once, and two [embed, embed] maps
    learnt on them are folded into visual.proj and text_projection (x @ proj @ W), so training takes
    a second, not minutes.
    """
    import ruclip
    torch.manual_seed(seed)
    clip, processor = ruclip.load(str(base))
    prompts = ['{}', 'фото: {}.', 'на фото {}.', 'это {}', 'картинка: {}']
    labels = torch.arange(len(COLOURS)).repeat(16)
    with torch.no_grad():
        pixels = torch.stack([processor.image_transform(colour_image(int(c), 10_000 + i))
                              for i, c in enumerate(labels)])
        image_latents = clip.encode_image(pixels)  # [64, embed]
        tokens = processor.pad([processor.tokenize(p.format(word)) for p in prompts for word in CLASSNAMES])
        text_latents = clip.encode_text(tokens).view(len(prompts), len(COLOURS), -1)  # [prompts, classes, embed]
    embed = image_latents.shape[1]
    maps = [torch.eye(embed, requires_grad=True), torch.eye(embed, requires_grad=True)]
    for step in range(steps):
        images = torch.nn.functional.normalize(image_latents @ maps[0], dim=-1)
        texts = torch.nn.functional.normalize(text_latents[step % len(prompts)] @ maps[1], dim=-1)
        logits = 20 * images @ texts.T  # [64, classes]
        loss = torch.nn.functional.cross_entropy(logits, labels)
        gradients = torch.autograd.grad(loss, maps)
        with torch.no_grad():  # plain gradient descent (torch.optim's first import costs seconds)
            for matrix, gradient in zip(maps, gradients):
                matrix -= 0.5 * gradient
    state = {k: v.detach().clone() for k, v in clip.state_dict().items()}
    state['visual.proj'] = state['visual.proj'] @ maps[0].detach()
    state['text_projection'] = state['text_projection'] @ maps[1].detach()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ('config.json', 'bpe.model'):
        shutil.copy(Path(base) / name, folder / name)
    torch.save(state, folder / 'pytorch_model.bin')
    return folder


def write_food101(root: Path, english_names, per_class: int = 1, classes=(0, 1, 2, 3)) -> Path:
    """torchvision's Food101 layout: food-101/meta/test.json listing every class (keys spelt as
    food-101/meta/classes.txt, english_names with '_'), images for `classes` in food-101/images/."""
    import json
    keys = [name.replace(' ', '_') for name in english_names]
    meta = {key: [] for key in keys}
    for label in classes:
        for i in range(per_class):
            path = root / 'food-101' / 'images' / keys[label] / f'{label}{i:03d}.jpg'
            path.parent.mkdir(parents=True, exist_ok=True)
            colour_image(label % len(COLOURS), 50 + i).save(path, format='JPEG', quality=95)
            meta[keys[label]].append(f'{keys[label]}/{label}{i:03d}')
    (root / 'food-101' / 'meta').mkdir(parents=True, exist_ok=True)
    (root / 'food-101' / 'meta' / 'test.json').write_text(json.dumps(meta))
    return root


def write_image_folder(root: Path, per_class: int, seed: int = 0, names=CLASSNAMES) -> Path:
    """root/<class word>/<i>.png, per_class images of each colour."""
    for label, name in enumerate(names):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            colour_image(label, seed + i).save(root / name / f'{i:03d}.png')
    return root
