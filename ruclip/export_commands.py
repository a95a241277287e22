"""The `ruclip export-onnx` and `ruclip export-hf` subcommands: options and run functions for the CLI.

Each pair (NAME_arguments(parser), run_NAME(args) -> exit code) plugs into an argparse subparser; the
run prints the files it wrote, one a line, and raises ValueError / FileNotFoundError / ImportError for
input or installs the user has to fix. `python -m ruclip.export_commands` runs them on their own.
"""
import argparse
import os
import sys
from typing import List, Optional

import torch

from .hf_export import export_hf
from .onnx_export import DEFAULT_OPSET, MIN_OPSET, export_onnx
from .pretrained import checkpoint_folder


def export_onnx_arguments(parser: argparse.ArgumentParser) -> None:
    _add_model_and_out(parser, 'image.onnx, text.onnx, config.json and bpe.model')
    parser.add_argument('--opset', type=_opset, default=DEFAULT_OPSET, metavar='N',
                        help=f'ONNX opset, at least {MIN_OPSET} (default: {DEFAULT_OPSET})')
    parser.add_argument('--fp16', action='store_true',
                        help='store the weights in float16 (half the size; latents within ~1e-3 of fp32); '
                             'inputs and outputs stay float32')


def run_export_onnx(args: argparse.Namespace) -> int:
    folder = checkpoint_folder(args.model, cache_dir=args.cache_dir)
    export_onnx(folder, args.out, opset=args.opset, dtype=torch.float16 if args.fp16 else None)
    _print_files(args.out)
    return 0


def export_hf_arguments(parser: argparse.ArgumentParser) -> None:
    _add_model_and_out(parser, 'a transformers CLIPModel and CLIPProcessor (save_pretrained)')
    parser.add_argument('--no-lowercase', dest='lowercase', action='store_false',
                        help="leave lowercasing to the user (str.lower()) instead of the tokenizer's "
                             "Lowercase normalizer")


def run_export_hf(args: argparse.Namespace) -> int:
    folder = checkpoint_folder(args.model, cache_dir=args.cache_dir)
    export_hf(folder, args.out, lowercase=args.lowercase)
    _print_files(args.out)
    return 0


COMMANDS = [  # (name, help, arguments, run)
    ('export-onnx', 'ONNX files of the image and text towers, for onnxruntime and TensorRT',
     export_onnx_arguments, run_export_onnx),
    ('export-hf', 'a transformers CLIPModel folder: from_pretrained and pipelines, without ruclip',
     export_hf_arguments, run_export_hf),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m ruclip.export_commands', description=__doc__.split('\n')[0])
    subparsers = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for name, help, arguments, run in COMMANDS:
        subparser = subparsers.add_parser(name, help=help, description=help)
        arguments(subparser)
        subparser.set_defaults(run=run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run one export subcommand; return its exit code (2 for input or installs to fix)."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, ImportError) as error:
        print(f'ruclip {args.command}: error: {error}', file=sys.stderr)
        return 2


def _add_model_and_out(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument('--model', required=True, metavar='NAME_OR_FOLDER',
                        help='a model of ruclip.MODELS (downloaded if needed) or a checkpoint folder')
    parser.add_argument('--out', required=True, metavar='DIR', help=f'folder to write {what} into')
    parser.add_argument('--cache-dir', metavar='FOLDER', help='the Hugging Face cache to use (default: the standard one)')


def _opset(value: str) -> int:
    if not value.isdigit() or int(value) < MIN_OPSET:
        raise argparse.ArgumentTypeError(f'expected an integer >= {MIN_OPSET}, got {value!r}')
    return int(value)


def _print_files(out: str) -> None:
    for name in sorted(os.listdir(out)):
        print(os.path.join(out, name))


if __name__ == '__main__':
    sys.exit(main())
