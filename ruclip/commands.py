"""The `ruclip` subcommands: models, classify, rank, embed; each a Command that cli.py lists.

A command's run(args) prints its results to stdout and returns an exit code (see cli.py);
it raises UsageError (or FileNotFoundError / ValueError) for input the user has to fix.
"""
import argparse
import json
import os
import sys
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch

from .catalog import describe, describe_models
from .files import find_images
from .outputs import check_writable_file
from .predictor import Predictor, check_templates
from .pretrained import load
from .tasks import classify, embed_images, rank

DEFAULT_MODEL = 'ruclip-vit-base-patch32-384'
# exit codes (cli.exit_codes explains them in --help)
EXIT_OK = 0
EXIT_SKIPPED = 1  # done, some image files left out
EXIT_USAGE = 2
EXIT_FAILED = 3
EXIT_INTERRUPTED = 130  # Ctrl-C: what a shell reports for SIGINT
EXIT_BROKEN_PIPE = 141  # stdout closed early: what a shell reports for SIGPIPE


class UsageError(Exception):
    """Input the user has to fix: exit code 2."""


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]  # adds the command's options
    run: Callable[[argparse.Namespace], int]  # does the work, returns the exit code
    reads_images: bool = False  # may skip unreadable image files (exit code 1)


# ---- shared options and helpers ------------------------------------------------------------------

def add_model_options(parser: argparse.ArgumentParser):
    """--model, --device, --batch-size, --cache-dir and --quiet: the options of a command that runs the model."""
    group = add_checkpoint_options(parser)
    group.add_argument('--device', type=_device, help='cpu, cuda, cuda:1, ... (default: cuda if available)')
    group.add_argument('--batch-size', type=positive_int, default=None, metavar='N',
                       help='images per forward pass (default: chosen for the device)')
    add_quiet_option(group)


def add_checkpoint_options(parser: argparse.ArgumentParser):
    """--model and --cache-dir, in a 'model options' group, which is returned."""
    group = parser.add_argument_group('model options')
    group.add_argument('--model', default=DEFAULT_MODEL, metavar='NAME_OR_FOLDER',
                       help=f'a model of `ruclip models` or a checkpoint folder (default: {DEFAULT_MODEL})')
    _add_cache_dir(group)
    return group


def add_quiet_option(parser):
    parser.add_argument('-q', '--quiet', action='store_true', help='no progress bars')


def _add_cache_dir(parser):
    parser.add_argument('--cache-dir', metavar='FOLDER', help='the Hugging Face cache to use (default: the standard one)')


def load_predictor(args: argparse.Namespace, templates: Optional[Sequence[str]] = None) -> Predictor:
    device = args.device or torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise UsageError(f'--device {device}: CUDA is not available on this machine; use --device cpu')
    clip, processor = load(args.model, device=device, cache_dir=args.cache_dir)
    return Predictor(clip, processor, device, templates=templates, bs=args.batch_size, quiet=args.quiet)


def positive_int(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise argparse.ArgumentTypeError(f'expected a positive integer, got {value!r}')
    return int(value)


def _device(value: str) -> torch.device:
    try:
        return torch.device(value)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"expected a torch device such as cpu, cuda or cuda:1, got {value!r}") from None


def print_json(value):
    """JSON on stdout in UTF-8 whatever the locale's encoding; file names that are not UTF-8 (their
    bytes kept by Python as surrogate escapes) are written back as the bytes they were."""
    text = json.dumps(value, ensure_ascii=False, indent=2) + '\n'
    binary = getattr(sys.stdout, 'buffer', None)
    if binary is None:  # a text-only stream (io.StringIO, some notebook kernels): it takes str
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    binary.write(text.encode('utf-8', errors='surrogateescape'))
    binary.flush()


def print_table(header: List[str], rows: List[List[str]]):
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    for row in [header] + rows:
        print('  '.join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _exit_code(skipped, total: int) -> int:
    """Exit code 1 and a count on stderr when files were skipped (each was named as it happened)."""
    if not skipped:
        return EXIT_OK
    print(f'ruclip: skipped {len(skipped)} of {total} image files that could not be read', file=sys.stderr)
    return EXIT_SKIPPED


def _skipped_json(skipped):
    return [dict(file=path, reason=reason) for path, reason in skipped]


def _clean(values: Sequence[str], what: str) -> List[str]:
    values = [value.strip() for value in values]
    if not all(values):
        raise UsageError(f'{what} must not be empty or blank, got {values!r}')
    return values


# ---- models ----------------------------------------------------------------------------------------

def _models_arguments(parser):
    parser.add_argument('--model', metavar='NAME_OR_FOLDER', help='describe only this model or checkpoint folder')
    _add_cache_dir(parser)
    parser.add_argument('--json', action='store_true', help='print JSON instead of a table')


def _run_models(args) -> int:
    infos = [describe(args.model, args.cache_dir)] if args.model else describe_models(args.cache_dir)
    if args.json:
        print_json([info.to_dict() for info in infos])
        return EXIT_OK
    print_table(['model', 'vit', 'image size', 'cached', 'size on disk'], [
        [info.name, info.vit, f'{info.image_size}px', 'yes' if info.cached else 'no',
         f'{info.size_bytes / 2**20:.1f} MiB' if info.cached else '-'] for info in infos])
    return EXIT_OK


# ---- classify --------------------------------------------------------------------------------------

def _classify_arguments(parser):
    parser.add_argument('images', nargs='+', metavar='IMAGE_OR_FOLDER', help='image files and folders of them')
    parser.add_argument('--labels', nargs='+', required=True, metavar='LABEL', help='the classes, e.g. кошка собака')
    parser.add_argument('--templates', nargs='+', metavar='TEMPLATE',
                        help="captions with {} for the label, e.g. 'фото, на котором {}' (default: six built in)")
    parser.add_argument('--top-k', type=positive_int, default=3, metavar='K', help='labels per image (default: 3)')
    parser.add_argument('--json', action='store_true', help='print JSON instead of a table')
    add_model_options(parser)


def _run_classify(args) -> int:
    files = find_images(args.images)
    labels = _clean(args.labels, '--labels')
    try:
        check_templates(args.templates)
    except ValueError as error:
        raise UsageError(f'--templates: {error}') from None
    predictor = load_predictor(args, templates=args.templates)
    embeddings = embed_images(predictor, files)
    top = classify(predictor, embeddings.latents, labels, args.top_k)
    if args.json:
        print_json(dict(model=args.model, labels=labels, skipped=_skipped_json(embeddings.skipped), results=[
            dict(file=file, top=[dict(label=e['label'], index=e['index'], probability=e['score']) for e in entries])
            for file, entries in zip(embeddings.files, top.tolist())]))
    else:
        print_table(['image'] + [f'top {i + 1}' for i in range(top.indices.shape[1])], [
            [file] + [f"{e['label']} {e['score']:.3f}" for e in entries]
            for file, entries in zip(embeddings.files, top.tolist())])
    return _exit_code(embeddings.skipped, len(files))


# ---- rank ------------------------------------------------------------------------------------------

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
                        images_per_text=per_text, skipped=_skipped_json(embeddings.skipped)))
    else:
        for title, blocks, key, item in (('Captions for each image', per_image, 'file', 'text'),
                                         ('Images for each caption', per_text, 'text', 'file')):
            print(f'# {title} (cosine similarity)')
            for block in blocks:
                print(block[key])
                for place, entry in enumerate(block['top'], 1):
                    print(f"  {place:>2}. {entry['score']:+.3f}  {entry[item]}")
            print()
    return _exit_code(embeddings.skipped, len(files))


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


# ---- embed -----------------------------------------------------------------------------------------

def _embed_arguments(parser):
    parser.add_argument('images', nargs='+', metavar='IMAGE_OR_FOLDER', help='image files and folders of them')
    parser.add_argument('--out', required=True, metavar='FILE',
                        help='.npz: arrays latents [n, embed_dim] float32, files and model; '
                             '.npy: the latents, and the files one a line in FILE.files.txt')
    add_model_options(parser)


def _run_embed(args) -> int:
    out = args.out
    if not out.endswith(('.npy', '.npz')):
        raise UsageError(f'--out must end in .npy or .npz, got {out}')
    listing = out[:-len('.npy')] + '.files.txt'
    for path in [out] if out.endswith('.npz') else [out, listing]:
        check_writable_file(path, '--out')
    files = find_images(args.images)
    embeddings = embed_images(load_predictor(args), files)
    latents = embeddings.latents.float().cpu().numpy()
    if out.endswith('.npz'):
        np.savez(out, latents=latents, files=np.array(embeddings.files), model=np.array(args.model))
        written = out
    else:
        np.save(out, latents)
        with open(listing, 'w', encoding='utf-8') as file:
            file.writelines(f'{path}\n' for path in embeddings.files)
        written = f'{out} and {listing}'
    print(f'wrote {latents.shape[0]} image latents of {latents.shape[1]} dimensions to {written}')
    return _exit_code(embeddings.skipped, len(files))


MODELS_COMMAND = Command('models', 'the six models, their sizes, whether each is cached here', _models_arguments,
                         _run_models)
CLASSIFY_COMMAND = Command('classify', 'top-k labels with probabilities for each image', _classify_arguments,
                           _run_classify, reads_images=True)
RANK_COMMAND = Command('rank', 'captions ranked for each image and images for each caption', _rank_arguments,
                       _run_rank, reads_images=True)
EMBED_COMMAND = Command('embed', 'image latents to a .npy or .npz file', _embed_arguments, _run_embed,
                        reads_images=True)
