"""The `ruclip export-onnx` and `ruclip export-hf` subcommands, listed in cli.COMMANDS.

Each run prints the files of its output folder, one a line, and returns exit code 0.
"""
import argparse
import os

import torch

from .commands import DEFAULT_MODEL, Command
from .hf_export import export_hf
from .onnx_export import DEFAULT_OPSET, MIN_OPSET, export_onnx
from .pretrained import checkpoint_folder


def _export_onnx_arguments(parser: argparse.ArgumentParser) -> None:
    _add_model_and_out(parser, 'image.onnx, text.onnx, config.json and bpe.model')
    parser.add_argument('--opset', type=_opset, default=DEFAULT_OPSET, metavar='N',
                        help=f'ONNX opset, at least {MIN_OPSET} (default: {DEFAULT_OPSET})')
    parser.add_argument('--fp16', action='store_true',
                        help='store the weights in float16 (half the size; latents within ~3e-3 of fp32); '
                             'inputs and outputs stay float32')


def _run_export_onnx(args: argparse.Namespace) -> int:
    folder = checkpoint_folder(args.model, cache_dir=args.cache_dir)
    export_onnx(folder, args.out, opset=args.opset, dtype=torch.float16 if args.fp16 else None)
    _print_files(args.out)
    return 0


def _export_hf_arguments(parser: argparse.ArgumentParser) -> None:
    _add_model_and_out(parser, 'a transformers CLIPModel and CLIPProcessor (save_pretrained)')
    parser.add_argument('--no-lowercase', dest='lowercase', action='store_false',
                        help="save the tokenizer without tokenizers' Lowercase normalizer: callers lowercase "
                             "texts with str.lower() themselves")


def _run_export_hf(args: argparse.Namespace) -> int:
    folder = checkpoint_folder(args.model, cache_dir=args.cache_dir)
    export_hf(folder, args.out, lowercase=args.lowercase)
    _print_files(args.out)
    return 0


def _add_model_and_out(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument('--model', default=DEFAULT_MODEL, metavar='NAME_OR_FOLDER',
                        help=f'a model of `ruclip models` or a checkpoint folder (default: {DEFAULT_MODEL})')
    parser.add_argument('--out', required=True, metavar='DIR', help=f'folder to write {what} into')
    parser.add_argument('--cache-dir', metavar='FOLDER', help='the Hugging Face cache to use (default: the standard one)')


def _opset(value: str) -> int:
    if not value.isdigit() or int(value) < MIN_OPSET:
        raise argparse.ArgumentTypeError(f'expected an integer >= {MIN_OPSET}, got {value!r}')
    return int(value)


def _print_files(out: str) -> None:
    for name in sorted(os.listdir(out)):
        print(os.path.join(out, name))


EXPORT_ONNX = Command('export-onnx', 'ONNX files of the image and text towers, for onnxruntime',
                      _export_onnx_arguments, _run_export_onnx)
EXPORT_HF = Command('export-hf', 'a transformers CLIPModel folder, for from_pretrained and pipelines',
                    _export_hf_arguments, _run_export_hf)
