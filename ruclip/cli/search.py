"""`ruclip index` and `ruclip search`: a search index of image folders (ruclip.search)."""
import os
import sys

from ._common import (Command, UsageError, add_exact_decode_option, exit_code, model_folders, positive_int,
                      print_json, print_table)
from ._index import default_index, index_options, open_index


# ---- ruclip index ------------------------------------------------------------------------------
def _index_arguments(parser):
    parser.add_argument('paths', nargs='*', metavar='FOLDER_OR_FILE',
                        help='image folders (searched recursively) and files to index, or to bring up to date')
    parser.add_argument('--from-embeddings', metavar='FILE', action='append', default=[],
                        help='take in `ruclip embed` output (.npz, or .npy with its .files.txt) without re-embedding')
    parser.add_argument('--from-clip-retrieval', metavar='FOLDER', action='append', default=[],
                        help='take in a clip-retrieval folder (img_emb/*.npy + metadata/*.parquet)')
    parser.add_argument('--assume-model', action='store_true',
                        help="take --from-embeddings / --from-clip-retrieval latents that do not record their model "
                             "(clip-retrieval's own output, an earlier ruclip's) as the index's model's: you vouch "
                             "that the same checkpoint, backend, dtype and preprocessing made them")
    parser.add_argument('--faiss', action='store_true',
                        help='build the faiss index for approximate search once done (pip install ruclip[faiss])')
    parser.add_argument('--wait', type=float, default=10.0, metavar='SECONDS',
                        help='how long to wait for another `ruclip index` on the same index (default: 10)')
    parser.add_argument('--commit-every', type=positive_int, default=256, metavar='N',
                        help='images embedded per transaction: what an interruption can lose (default: 256)')
    parser.add_argument('--tags', action='store_true', help='tag every photo once indexed (see `ruclip tag`)')
    add_exact_decode_option(parser)
    index_options(parser)
    from .photos import add_tag_options
    add_tag_options(parser.add_argument_group('tags (with --tags)'))


def describe_approximate(report: dict) -> str:
    """One line on the faiss index: its kind, cells searched and the recall its calibration measured."""
    from ..search.approximate import RECALL_TARGET

    cells = f", {report['nprobe']} of {report['cells']} cells searched" if report.get('cells') else ''
    line = (f"faiss {report['kind']} index{cells}: recall@10 {report['recall_at_10']:.3f} against exact search "
            f"({report['queries']} stored images as queries, at {report['rows']} images)")
    if report['recall_at_10'] < RECALL_TARGET:
        line += f'; under {RECALL_TARGET}, so searches stay exact unless --approximate'
    return line


def _run_index(args) -> int:
    if not (args.paths or args.from_embeddings or args.from_clip_retrieval):
        raise UsageError('give the folders or files to index (or --from-embeddings / --from-clip-retrieval)')
    _check_outputs(args)
    index = open_index(args, create=True)
    index.wait = args.wait
    report, imported = None, 0
    for source in args.from_embeddings:
        imported += index.import_embeddings(source, trust_model=args.assume_model)
    for source in args.from_clip_retrieval:
        imported += index.import_clip_retrieval(source, trust_model=args.assume_model)
    if args.paths:
        report = index.update(args.paths, commit_every=args.commit_every)
    if args.tags:
        from .photos import run_tagging
        print(run_tagging(index, args), file=sys.stderr)
    if args.faiss:
        index.build_approximate()
        print(describe_approximate(index.approximate_report()), file=sys.stderr)
    parts = [f'{imported} imported'] if imported else []
    if report is not None:
        parts += [f'{report.embedded} embedded', f'{report.reused} reused (moved or copied)',
                  f'{report.touched} touched', f'{report.removed} removed', f'{report.unchanged} unchanged']
        if report.skipped:
            parts.append(f'{len(report.skipped)} skipped')
    print(f'{index.path}: {", ".join(parts)}; {len(index)} images in the index')
    if report is None:
        return 0
    files_skipped = sum(1 for path, _ in report.skipped if not os.path.isdir(path))
    return exit_code(report.skipped, report.embedded + files_skipped)


def _check_outputs(args) -> None:
    """The index file and what SQLite and the index write beside it are none of the inputs, nor in a
    checkpoint folder (see _outputs.check_not_input)."""
    from .._outputs import check_not_input

    path = args.index or default_index()
    listings = [source[:-len('.npy')] + '.files.txt' for source in args.from_embeddings if source.endswith('.npy')]
    inputs = [*args.paths, *args.from_embeddings, *listings, *args.from_clip_retrieval]
    for output in (path, f'{path}-wal', f'{path}-shm', f'{path}.lock', f'{path}.cache'):
        check_not_input(output, '--index', inputs=inputs, inside=model_folders(args))


# ---- ruclip search -----------------------------------------------------------------------------
def _search_arguments(parser):
    from ..search.photos import SORTS

    parser.add_argument('query', nargs='+', metavar='QUERY',
                        help='texts and image files, each optionally weighted as W:TERM ("2:кошка", '
                             '"0.5:./диван.jpg"); after --, "-TERM" subtracts ("-собака"); text:TERM and '
                             'image:TERM say which a term is')
    parser.add_argument('-k', '--top-k', type=positive_int, default=10, metavar='K', help='results (default: 10)')
    parser.add_argument('--json', action='store_true', help='a JSON list of {rank, score, path, taken, taken_from, '
                        'camera, gps, width, height, tags}')
    parser.add_argument('-f', '--files-only', action='store_true', help='only the paths, one a line (for xargs)')
    parser.add_argument('--prefix', metavar='FOLDER', help='only images under this folder')
    parser.add_argument('--after', metavar='DATE', help='only photos taken on or after DATE (YYYY-MM-DD or '
                        'YYYY-MM-DDTHH:MM, the time the camera shows; EXIF, else the file time)')
    parser.add_argument('--before', metavar='DATE', help='only photos taken before DATE')
    parser.add_argument('--tag', action='append', default=[], metavar='TAG',
                        help='only photos tagged TAG by `ruclip tag` (repeat: all of them)')
    parser.add_argument('--sort', choices=SORTS, default='score',
                        help='order of the top K: by score (default) or by the date taken, oldest first')
    parser.add_argument('--no-templates', action='store_true',
                        help="texts as they are (default: through the model's templates, averaged)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--exact', action='store_true', help='exact search even when a faiss index is built')
    mode.add_argument('--approximate', action='store_true', help='faiss search (built now if needed)')
    index_options(parser, batch_size=False)


def _run_search(args) -> int:
    from ..search import parse_terms, photos, tags

    terms = parse_terms(args.query)
    after, before = (None if value is None else photos.parse_date(value, option)
                     for value, option in ((args.after, '--after'), (args.before, '--before')))
    index = open_index(args)
    only = photos.filtered_ids(index, after, before, tags.clean_tags(args.tag))
    approximate = True if args.approximate else False if args.exact else None
    hits = index.search(terms, k=args.top_k, prefix=args.prefix, templates=not args.no_templates,
                        approximate_search=approximate, only=only)
    if len(hits) < args.top_k and not args.prefix and only is None:
        print(f'ruclip search: the index holds only {len(index)} images', file=sys.stderr)
    details = photos.describe(index, [hit.id for hit in hits])
    hits = photos.in_order(hits, details, args.sort)
    if args.json:
        print_json([dict(rank=hit.rank, score=round(hit.score, 6), path=hit.path,
                         **{key: value for key, value in details[hit.id].items() if key != 'taken_key'})
                    for hit in hits])
    elif args.files_only:
        for hit in hits:
            print(hit.path)
    else:
        print_table(['rank', 'score', 'path', 'taken'], [[str(hit.rank), f'{hit.score:.4f}', hit.path,
                                                          details[hit.id]['taken'][:16].replace('T', ' ')]
                                                         for hit in hits])
    return 0


COMMANDS = {
    'index': Command(_index_arguments, _run_index, reads_images=True),
    'search': Command(_search_arguments, _run_search),
}
