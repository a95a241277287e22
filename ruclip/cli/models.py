"""`ruclip models`: the six models, their sizes, whether each is cached here, and what the model commands'
defaults (--backend auto --dtype auto) run on this machine; never touches the network."""
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
    """What the model commands' defaults, --backend auto --dtype auto, run here: the CPU class decides."""
    import importlib.util

    import torch

    from .._device import auto_dtype, cpu_class

    def torch_dtype(device: str) -> str:
        return str(auto_dtype(torch.device(device))).removeprefix('torch.')

    if importlib.util.find_spec('openvino') is not None:
        from ..backends import _int8
        from ..backends._imports import import_openvino
        from ..backends.openvino import auto_fallback

        cpu = (f'OpenVINO int8 on the CPU (class {cpu_class()}) for a checkpoint whose int8 latents reach a cosine '
               f'of {_int8.MIN_COSINE} to fp32 ones (measured when its int8 model is built), else OpenVINO '
               f'{auto_fallback(import_openvino().Core())}')
    else:
        cpu = (f"PyTorch {torch_dtype('cpu')} on the CPU (class {cpu_class()}; OpenVINO is not installed: "
               f"pip install 'ruclip[openvino]')")
    line = 'this machine: --backend auto --dtype auto (the defaults) run '
    if torch.cuda.is_available():  # the default --device
        return line + f"PyTorch {torch_dtype('cuda')} on {torch.cuda.get_device_name()}; with --device cpu {cpu}"
    return line + cpu


COMMANDS = {'models': Command(_models_arguments, _run_models)}
