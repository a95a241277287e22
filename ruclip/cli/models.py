"""`ruclip models`: the six models, their sizes, whether each is cached here, and the dtype `auto` picks on this
machine; never touches the network."""
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
    print(f'\n{_machine()}')
    return EXIT_OK


def _machine() -> str:
    """What --dtype auto (and dtype='auto') runs here: the CPU class decides on the CPU."""
    import torch

    from .._device import auto_dtype, cpu_class

    picks = [f"{str(auto_dtype(torch.device('cpu'))).removeprefix('torch.')} on the CPU (class {cpu_class()})"]
    if torch.cuda.is_available():
        picks.append(f"{str(auto_dtype(torch.device('cuda'))).removeprefix('torch.')} on {torch.cuda.get_device_name()}")
    return 'this machine: --dtype auto runs ' + ' and '.join(picks)


COMMANDS = {'models': Command(_models_arguments, _run_models)}
