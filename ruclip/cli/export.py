"""`ruclip export-onnx` and `ruclip export-hf`: the model for onnxruntime and for transformers.

Each run prints the files it wrote, one a line, and returns exit code 0.
"""
import argparse
import logging
from contextlib import contextmanager
from typing import Iterator

import torch

from .._optional import require
from ..export.hf import export_hf
from ..export.onnx import DEFAULT_OPSET, MIN_OPSET, check_opset, export_onnx, max_opset
from ._common import EXIT_OK, Command, add_checkpoint_options, add_quiet_option


def _export_onnx_arguments(parser: argparse.ArgumentParser) -> None:
    _add_out_options(parser, 'image.onnx, text.onnx, config.json and bpe.model')
    parser.add_argument('--opset', type=_opset, default=DEFAULT_OPSET, metavar='N',
                        help=f'ONNX opset, from {MIN_OPSET} to {max_opset()} (default: {DEFAULT_OPSET})')
    parser.add_argument('--fp16', action='store_true',
                        help='store the weights in float16 (half the size; latents within ~3e-3 of fp32); '
                             'inputs and outputs stay float32')


def _run_export_onnx(args: argparse.Namespace) -> int:
    with _quiet_loggers(args.quiet, 'torch.onnx', 'onnxscript'):
        paths = export_onnx(args.model, args.out, opset=args.opset, dtype=torch.float16 if args.fp16 else None,
                            overwrite=args.overwrite, cache_dir=args.cache_dir)
    for path in sorted(paths.values()):
        print(path)
    return EXIT_OK


def _export_hf_arguments(parser: argparse.ArgumentParser) -> None:
    _add_out_options(parser, 'a transformers CLIPModel and CLIPProcessor (save_pretrained)')
    parser.add_argument('--no-lowercase', dest='lowercase', action='store_false',
                        help="save the tokenizer without tokenizers' Lowercase normalizer: callers lowercase "
                             "texts with str.lower() themselves")


def _run_export_hf(args: argparse.Namespace) -> int:
    with _quiet_loggers(args.quiet, 'transformers'), _no_transformers_bars(args.quiet):
        paths = export_hf(args.model, args.out, lowercase=args.lowercase, overwrite=args.overwrite,
                          cache_dir=args.cache_dir)
    for path in paths:
        print(path)
    return EXIT_OK


def _add_out_options(parser: argparse.ArgumentParser, what: str) -> None:
    group = add_checkpoint_options(parser)
    add_quiet_option(group)
    parser.add_argument('--out', required=True, metavar='DIR', help=f'a new or empty folder to write {what} into')
    parser.add_argument('--overwrite', action='store_true',
                        help='write into --out even if it holds files, replacing only files an earlier export wrote '
                             'there (never into the checkpoint folder or a Hugging Face cache)')


def _opset(value: str) -> int:
    try:
        return check_opset(int(value) if value.isascii() and value.isdigit() else value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


@contextmanager
def _quiet_loggers(quiet: bool, *names: str) -> Iterator[None]:
    """With --quiet, only errors from these libraries' loggers."""
    loggers = [logging.getLogger(name) for name in names] if quiet else []
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextmanager
def _no_transformers_bars(quiet: bool) -> Iterator[None]:
    """With --quiet, no 'Loading weights' / 'Writing model shards' progress bars from transformers."""
    if not quiet:
        yield
        return
    transformers_logging = require('transformers.utils.logging', 'hf', 'the transformers export')
    enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            transformers_logging.enable_progress_bar()


COMMANDS = {
    'export-onnx': Command(_export_onnx_arguments, _run_export_onnx),
    'export-hf': Command(_export_hf_arguments, _run_export_hf),
}
