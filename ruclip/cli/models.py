"""`ruclip models`: the six models, their sizes, whether each is cached here; never touches the network."""
from ._common import EXIT_OK, Command, add_cache_dir, print_json, print_table


def _models_arguments(parser):
    parser.add_argument('--model', metavar='NAME_OR_FOLDER', help='describe only this model or checkpoint folder')
    add_cache_dir(parser)
    parser.add_argument('--json', action='store_true', help='print JSON instead of a table')


def _run_models(args) -> int:
    from ..pretrained import describe, describe_models

    infos = [describe(args.model, args.cache_dir)] if args.model else describe_models(args.cache_dir)
    if args.json:
        print_json([info.to_dict() for info in infos])
        return EXIT_OK
    print_table(['model', 'vit', 'image size', 'cached', 'size on disk'], [
        [info.name, info.vit, f'{info.image_size}px', 'yes' if info.cached else 'no',
         f'{info.size_bytes / 2**20:.1f} MiB' if info.cached else '-'] for info in infos])
    return EXIT_OK


COMMANDS = {'models': Command(_models_arguments, _run_models)}
