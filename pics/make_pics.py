"""Regenerate the README's pictures with ruclip's own plotting code.

    python pics/make_pics.py                                      # tiny random checkpoint (test extra)
    python pics/make_pics.py --model ruclip-vit-base-patch32-384  # real weights, from the Hub or its cache

The inputs are eight pictures drawn by pics/shapes.py (no downloads). Every picture's title names
the checkpoint that made it; with the default random checkpoint its numbers mean nothing about
RuCLIP's quality, and the titles say so.
"""
import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]  # this checkout's ruclip, and shapes.py

import ruclip  # noqa: E402
from shapes import LABELS, draw_pictures  # noqa: E402

RANDOM = 'tiny random checkpoint'


def tiny_random_checkpoint(folder: Path, seed: int = 0) -> Path:
    """The tests' tiny random ViT-B/32-224 checkpoint, with their shipped bpe.model."""
    sys.path.insert(0, str(REPO / 'tests'))
    from helpers.checkpoints import TINY_ARCHITECTURES, write_checkpoint

    bpe = REPO / 'tests' / 'data' / 'bpe_600.model'
    return write_checkpoint(folder / 'checkpoint', TINY_ARCHITECTURES['ruclip-vit-base-patch32-224'], bpe, seed=seed)


def make_pics(model: str, out: Path, name: str) -> list:
    """Draw the three pictures with checkpoint `model`, described as `name` in their titles."""
    clip, processor = ruclip.load(model)
    predictor = ruclip.Predictor(clip, processor, 'cpu', quiet=True)
    captions, _, images = zip(*draw_pictures())
    note = f'{name}: numbers are not model quality' if name.startswith(RANDOM) else name
    image_latents = predictor.get_image_latents(images)
    similarity = ruclip.similarity(image_latents, ruclip.encode_texts(predictor, captions))
    top = ruclip.classify(predictor, image_latents, LABELS, k=5)
    figures = {
        'cosine_heatmap.png': ruclip.similarity_heatmap(
            similarity, images, captions, title=f'Cosine similarity between text and image features\n{note}'),
        'probability_bars.png': ruclip.probability_bars(images, top, title=f'Top-5 probabilities, {note}'),
        'label_grid.png': ruclip.label_grid(images, [labels[0] for labels in top.labels],
                                            title=f'Zero-shot labels, {note}'),
    }
    out.mkdir(parents=True, exist_ok=True)
    for filename, figure in figures.items():
        figure.savefig(out / filename, dpi=80)
    return [out / filename for filename in figures]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', help='a model name or checkpoint folder (default: a tiny random checkpoint)')
    parser.add_argument('--out', type=Path, default=HERE, help='where to write the PNGs (default: pics/)')
    args = parser.parse_args(argv)
    if args.model:
        return make_pics(args.model, args.out, f'checkpoint {Path(args.model).name}')
    with tempfile.TemporaryDirectory() as folder:
        return make_pics(str(tiny_random_checkpoint(Path(folder))), args.out, f'{RANDOM} (seed 0)')


if __name__ == '__main__':
    for path in main():
        print(path)
