"""`ruclip duplicates` and `ruclip tag`: a photo library's near-duplicates and Russian tags, from an
index's stored latents (ruclip.search.duplicates, ruclip.search.tags)."""
import os
import sys

from ._common import Command, UsageError, print_json, print_table


def _index_path(args) -> str:
    from ._index import default_index

    path = args.index or default_index()
    if not os.path.isfile(path):
        raise UsageError(f'no index at {path}: build one first with `ruclip index FOLDER --index {path}`')
    return path


def _probability(value: str) -> float:
    import argparse
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is None or not 0 < number <= 1:
        raise argparse.ArgumentTypeError(f'expected a probability in (0, 1], got {value!r}')
    return number


def _cosine(value: str) -> float:
    import argparse
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is None or not -1 <= number <= 1:
        raise argparse.ArgumentTypeError(f'expected a cosine in [-1, 1], got {value!r}')
    return number


# ---- ruclip duplicates -------------------------------------------------------------------------
def _duplicates_arguments(parser):
    from ._index import index_options

    parser.add_argument('--threshold', type=_cosine, default=None, metavar='COSINE',
                        help="photos whose latents have at least this cosine are one group (default: measured for "
                             "the index's model on a sample of its photos and their drawn re-saves, resizes and "
                             "burst frames, the first time, with the model, then stored in the index); exact copies "
                             "always group")
    parser.add_argument('--json', action='store_true',
                        help='a JSON object: {threshold: {value, source, explanation, measured}, groups: [{keep, '
                             'exact_copies, photos: [{path, keep, bytes, pixels, taken}]}]}')
    index_options(parser, batch_size=False)


def _run_duplicates(args) -> int:
    from ._index import open_index
    from ..search.duplicate_calibration import SAMPLE_PHOTOS, Threshold, duplicate_threshold, is_stored
    from ..search.duplicates import find_duplicates, to_json

    with open_index(args) as index:
        if args.threshold is None and not is_stored(index):
            print(f"ruclip duplicates: measuring the threshold for this index's model on up to {SAMPLE_PHOTOS} of its "
                  f"photos (once: it is stored in the index)...", file=sys.stderr, flush=True)
        threshold = duplicate_threshold(index) if args.threshold is None else \
            Threshold(args.threshold, 'given', f'threshold {args.threshold:g}, given with --threshold')
        groups = find_duplicates(index, threshold.value)
    print(f'ruclip duplicates: {threshold.explanation}', file=sys.stderr)
    if args.json:
        print_json(dict(threshold=threshold.to_dict(), groups=to_json(groups)))
        return 0
    for number, group in enumerate(groups, 1):
        kind = 'exact copies' if group.exact else f'cosine >= {threshold.value:g}'
        print(f'group {number}: {len(group.photos)} photos ({kind})')
        print_table(['', 'pixels', 'bytes', 'taken', 'path'],
                    [['keep' if photo.keep else '', str(photo.pixels), str(photo.size),
                      photo.taken[:16].replace('T', ' '), photo.path] for photo in group.photos])
    extra = sum(len(group.photos) - 1 for group in groups)
    print(f'{len(groups)} group{"" if len(groups) == 1 else "s"} of near-identical photos; {extra} '
          f'photo{"" if extra == 1 else "s"} besides the one to keep in each', file=sys.stderr)
    return 0


# ---- ruclip tag --------------------------------------------------------------------------------
def add_tag_options(parser):
    from ..search.tags import DEFAULT_THRESHOLD, MAX_TAGS

    parser.add_argument('--vocabulary', metavar='FILE',
                        help='a tag vocabulary file (TAG or TAG = TEXT a line, "template: ... {} ..." lines) that '
                             'replaces the shipped Russian one')
    parser.add_argument('--tag-threshold', type=_probability, default=DEFAULT_THRESHOLD, metavar='P',
                        help=f'keep the tags of probability >= P among the vocabulary (default {DEFAULT_THRESHOLD}); '
                             f'at most {MAX_TAGS} a photo')


def _tag_arguments(parser):
    from ._index import index_options

    add_tag_options(parser)
    index_options(parser, batch_size=False)


def run_tagging(index, args) -> str:
    """Tag the index as --vocabulary and --tag-threshold say; one line saying what was done."""
    from ..search.tags import read_vocabulary, tag_index

    vocabulary = read_vocabulary(args.vocabulary)
    stored = tag_index(index, vocabulary, args.tag_threshold)
    return f'{stored} tags from a vocabulary of {len(vocabulary.tags)} on {len(index)} photos'


def _run_tag(args) -> int:
    from ._index import open_index

    _index_path(args)
    index = open_index(args)
    print(f'{index.path}: {run_tagging(index, args)}')
    return 0


COMMANDS = {
    'duplicates': Command(_duplicates_arguments, _run_duplicates),
    'tag': Command(_tag_arguments, _run_tag),
}
