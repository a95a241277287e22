"""`ruclip classify` and `ruclip rank`: zero-shot labels, and captions ranked against images."""
import os
import sys
from typing import List

from ._common import (Command, UsageError, add_model_options, clean, exit_code, load_predictor, positive_int,
                      print_json, print_table, skipped_json)


def _classify_arguments(parser):
    parser.add_argument('images', nargs='+', metavar='IMAGE_OR_FOLDER', help='image files and folders of them')
    parser.add_argument('--labels', nargs='+', required=True, metavar='LABEL', help='the classes, e.g. кошка собака')
    parser.add_argument('--templates', nargs='+', metavar='TEMPLATE',
                        help="captions with {} for the label, e.g. 'фото, на котором {}' (default: six built in)")
    parser.add_argument('--top-k', type=positive_int, default=3, metavar='K', help='labels per image (default: 3)')
    parser.add_argument('--json', action='store_true', help='print JSON instead of a table')
    add_model_options(parser)


def _run_classify(args) -> int:
    from ..image_files import find_images
    from ..predictor import check_templates
    from ..retrieval import embed_images
    from ..zero_shot import classify

    files = find_images(args.images)
    labels = clean(args.labels, '--labels')
    try:
        check_templates(args.templates)
    except ValueError as error:
        raise UsageError(f'--templates: {error}') from None
    predictor = load_predictor(args, templates=args.templates)
    embeddings = embed_images(predictor, files)
    top = classify(predictor, embeddings.latents, labels, args.top_k)
    if args.json:
        print_json(dict(model=args.model, labels=labels, skipped=skipped_json(embeddings.skipped), results=[
            dict(file=file, top=[dict(label=e['label'], index=e['index'], probability=e['score']) for e in entries])
            for file, entries in zip(embeddings.files, top.tolist())]))
    else:
        print_table(['image'] + [f'top {i + 1}' for i in range(top.indices.shape[1])], [
            [file] + [f"{e['label']} {e['score']:.3f}" for e in entries]
            for file, entries in zip(embeddings.files, top.tolist())])
    return exit_code(embeddings.skipped, len(files))


def _rank_arguments(parser):
    parser.add_argument('--images', nargs='+', required=True, metavar='IMAGE_OR_FOLDER',
                        help='image files and folders of them')
    parser.add_argument('--texts', required=True, metavar='FILE',
                        help='UTF-8 text file, one caption a line (blank lines ignored); - reads stdin')
    parser.add_argument('--top-k', type=positive_int, default=5, metavar='K',
                        help='captions per image and images per caption (default: 5)')
    parser.add_argument('--json', action='store_true', help='print JSON instead of lists')
    add_model_options(parser)


def _run_rank(args) -> int:
    from ..image_files import find_images
    from ..retrieval import embed_images, rank

    files = find_images(args.images)
    texts = _read_texts(args.texts)
    predictor = load_predictor(args)
    embeddings = embed_images(predictor, files)
    ranking = rank(predictor, embeddings.latents, texts, args.top_k, image_names=embeddings.files)
    per_image = [dict(file=file, top=[dict(text=e['label'], index=e['index'], score=e['score']) for e in entries])
                 for file, entries in zip(embeddings.files, ranking.texts_per_image.tolist())]
    per_text = [dict(text=text, top=[dict(file=e['label'], index=e['index'], score=e['score']) for e in entries])
                for text, entries in zip(texts, ranking.images_per_text.tolist())]
    if args.json:
        print_json(dict(model=args.model, files=embeddings.files, texts=texts, texts_per_image=per_image,
                        images_per_text=per_text, skipped=skipped_json(embeddings.skipped)))
    else:
        for title, blocks, key, item in (('Captions for each image', per_image, 'file', 'text'),
                                         ('Images for each caption', per_text, 'text', 'file')):
            print(f'# {title} (cosine similarity)')
            for block in blocks:
                print(block[key])
                for place, entry in enumerate(block['top'], 1):
                    print(f"  {place:>2}. {entry['score']:+.3f}  {entry[item]}")
            print()
    return exit_code(embeddings.skipped, len(files))


def _read_texts(path: str) -> List[str]:
    if path == '-':
        lines = sys.stdin.read().splitlines()
    else:
        if os.path.isdir(path):
            raise UsageError(f'--texts: {path} is a folder, expected a text file (one caption a line)')
        if not os.path.isfile(path):
            raise FileNotFoundError(f'--texts: no such file: {path}')
        try:
            with open(path, encoding='utf-8') as file:
                lines = file.read().splitlines()
        except UnicodeDecodeError as error:
            raise UsageError(f'--texts: {path} is not UTF-8 text ({error})') from None
    texts = [line.strip() for line in lines if line.strip()]
    if not texts:
        raise UsageError(f'--texts: {path} has no captions (one a line expected)')
    return texts


COMMANDS = {
    'classify': Command(_classify_arguments, _run_classify, reads_images=True),
    'rank': Command(_rank_arguments, _run_rank, reads_images=True),
}
