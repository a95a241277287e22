"""One `--lock-image` epoch of 10,000 image-caption pairs, end to end, through ruclip.finetune.

    python benchmarks/bench_train_epoch.py [--pairs 10000] [--pictures 64] [--batch-size 64] [--precision auto]

The issue's target: on 2 vCPUs an epoch of 10,000 pairs in under 5 minutes after the one-time image
pass. A full-size ruclip-vit-base-patch32-384 with random weights (bench.build_checkpoint) fine-tunes
for one epoch on a CSV of `--pairs` rows over `--pictures` drawn pictures (the image pass embeds each
picture once, so it is a few seconds here; with 10,000 distinct photos it is one tower pass each).
Reported: the whole call's wall time, the image pass's (timed alone, on the same pictures), their
difference (the epoch: text-tower steps, the end-of-epoch checkpoint), and the loop's pairs/s.
"""
import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'benchmarks'))

import bench  # noqa: E402  (puts the repository first on sys.path)
import ruclip  # noqa: E402
from ruclip._device import cpu_class  # noqa: E402
from ruclip.training import finetune  # noqa: E402

COLOURS = ['красный', 'синий', 'зелёный', 'жёлтый', 'белый', 'чёрный', 'серый', 'оранжевый']
THINGS = ['круг', 'квадрат', 'треугольник', 'кот', 'дом', 'автомобиль', 'цветок', 'стул']
PLACES = ['на столе', 'в поле', 'на улице', 'в комнате', 'у моря', 'в лесу', 'ночью', 'днём']


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--pairs', type=int, default=10_000)
    parser.add_argument('--pictures', type=int, default=64)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--precision', default='auto', choices=('auto', 'fp32', 'bf16'))
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix='ruclip-bench-epoch-'))
    model = bench.build_checkpoint(workdir, 'ruclip-vit-base-patch32-384', bench.train_tokenizer(workdir))
    pictures = []
    for i, image in enumerate(bench.make_photos(args.pictures, 320, 240)):
        pictures.append(workdir / f'{i}.jpg')
        image.save(pictures[-1])
    with open(workdir / 'pairs.csv', 'w', newline='', encoding='utf-8') as file:
        writer = csv.writer(file)
        writer.writerow(['image_path', 'caption'])
        for row in range(args.pairs):
            caption = f'{COLOURS[row % 8]} {THINGS[row // 8 % 8]} {PLACES[row // 64 % 8]}, кадр {row // 512}'
            writer.writerow([pictures[row % len(pictures)].name, caption])

    clip, processor = ruclip.load(str(model))
    image_pass = time.perf_counter()
    ruclip.Predictor(clip, processor, quiet=True).embed_images([str(p) for p in pictures])
    image_pass = time.perf_counter() - image_pass
    started = time.perf_counter()
    report = finetune(str(model), [str(workdir / 'pairs.csv')], str(workdir / 'tuned'), lock_image=True, epochs=1,
                      batch_size=args.batch_size, precision=args.precision, quiet=True)
    total = time.perf_counter() - started
    print(f"{bench.machine()}, CPU class {cpu_class()}")
    print(f'| pairs | pictures | batch | precision | whole call | image pass alone | epoch (difference) | loop pairs/s |')
    print('|---|---|---|---|---|---|---|---|')
    print(f'| {report.train_pairs} | {args.pictures} | {args.batch_size} | {args.precision} | {total:.1f} s | '
          f'{image_pass:.1f} s | {total - image_pass:.1f} s | {report.pairs_per_second:.1f} |')


if __name__ == '__main__':
    main()
