"""`ruclip finetune`: fine-tune a model on image-caption pairs or classes (ruclip.training) into a
checkpoint folder every command takes; `torchrun --nproc-per-node N -m ruclip finetune ...` trains
on N processes."""
import argparse
import sys

from ._common import (EXIT_OK, EXIT_SKIPPED, Command, add_checkpoint_options, add_quiet_option, positive_int,
                      print_json)


def _arguments(parser):
    data = parser.add_argument_group('data')
    data.add_argument('--train', required=True, nargs='+', metavar='DATA',
                      help='.parquet/.csv/.jsonl tables of image paths (relative to the table) and captions, '
                           'webdataset .tar shards (jpg/png + txt), or one folder of class subfolders (captions: '
                           'the class names in --templates)')
    data.add_argument('--val', nargs='+', metavar='DATA',
                      help='validation data, as --train: recall@1/5 (and zero-shot accuracy on class folders) '
                           'before training and after each epoch')
    data.add_argument('--templates', nargs='+', metavar='TEMPLATE',
                      help="for class folders: captions such as 'фото, на котором изображено {}' (default: '{}')")
    data.add_argument('--image-column', metavar='NAME',
                      help='table column of image paths (default: image_path, url, path, image or filepath)')
    data.add_argument('--caption-column', metavar='NAME', help='table column of captions (default: caption or text)')
    add_checkpoint_options(parser)
    parser.add_argument('--device', help='cpu, cuda, cuda:1 (default: cuda if available; under torchrun each '
                                         "process's LOCAL_RANK GPU)")
    parser.add_argument('--out', required=True, metavar='FOLDER',
                        help='the run folder: config.json, model.safetensors, bpe.model (load it with --model '
                             'FOLDER), training_args.json, training_report.json, README.md, metrics.jsonl, '
                             'checkpoints/')
    mode = parser.add_argument_group('what trains (default: both towers, fully)')
    locks = mode.add_mutually_exclusive_group()
    locks.add_argument('--lock-image', action='store_true',
                       help='LiT: the image tower stays as it is; its latents are computed once, so an epoch '
                            'costs only the text tower')
    locks.add_argument('--lock-text', action='store_true', help='the text tower stays as it is')
    mode.add_argument('--unlocked-blocks', type=_non_negative, metavar='N',
                      help='train only the last N blocks of each trained tower (and its final LayerNorm and '
                           'projection); 0: only the projections (trains in seconds on a CPU)')
    mode.add_argument('--lora', type=positive_int, metavar='RANK',
                      help='LoRA adapters of this rank on the attention and MLP weights, merged when saved')
    mode.add_argument('--lora-alpha', type=float, metavar='ALPHA', help='LoRA scale is alpha / rank (default 2 x rank)')
    run = parser.add_argument_group('training')
    run.add_argument('--epochs', type=positive_int, default=1, help='(default 1)')
    run.add_argument('--batch-size', type=positive_int, default=64, metavar='N',
                     help='the global batch, split across torchrun processes (default 64)')
    run.add_argument('--lr', type=_positive_float, default=5e-5, help='peak learning rate of AdamW (default 5e-5)')
    run.add_argument('--weight-decay', type=float, default=0.1, help='(default 0.1; not on biases, norms, embeddings)')
    run.add_argument('--warmup', type=_non_negative, metavar='STEPS',
                     help='linear warm-up steps (default 5%% of the run)')
    run.add_argument('--grad-clip', type=_positive_float, default=1.0, metavar='NORM', help='(default 1.0)')
    run.add_argument('--grad-accum', type=positive_int, default=1, metavar='N',
                     help='batches per optimizer step (default 1); negatives stay within each batch')
    run.add_argument('--precision', choices=('auto', 'fp32', 'bf16'), default='auto',
                     help='auto (default): bf16 autocast where the device computes bf16 natively, else fp32')
    run.add_argument('--grad-checkpointing', action='store_true',
                     help='recompute activations in backward: less memory for the large towers, slower')
    run.add_argument('--seed', type=int, default=0, help='(default 0)')
    run.add_argument('--workers', type=positive_int, dest='num_workers', metavar='N',
                     help='threads decoding images (default: one per core, up to 8)')
    keep = parser.add_argument_group('keeping what the model knew')
    keep.add_argument('--wise-ft', type=float, metavar='ALPHA',
                      help='WiSE-FT: save (1 - ALPHA) x base + ALPHA x fine-tuned weights (0 < ALPHA <= 1)')
    keep.add_argument('--zero-shot-check', metavar='FOLDER',
                      help='a folder of classes whose zero-shot accuracy (with --templates, or the Predictor\'s) is '
                           'measured before training and at each validation; a fall to half of a start at twice '
                           'chance or more stops the run')
    keep.add_argument('--keep-best', action='store_true',
                      help='save the weights of the best validation (needs --val), not the last')
    files = parser.add_argument_group('checkpoints')
    files.add_argument('--save-every', type=positive_int, metavar='STEPS',
                       help='also checkpoint every STEPS optimizer steps (always: after each epoch)')
    files.add_argument('--resume', action='store_true', help='continue the run in --out from its last checkpoint')
    files.add_argument('--overwrite', action='store_true', help='delete the run in --out and start again')
    parser.add_argument('--json', action='store_true', help='print the report as JSON')
    add_quiet_option(parser)


def _non_negative(value: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise argparse.ArgumentTypeError(f'expected an integer >= 0, got {value!r}')
    return int(value)


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number > 0 or number == float('inf'):
        raise argparse.ArgumentTypeError(f'expected a positive number, got {value!r}')
    return number


OPTIONS = ('val', 'zero_shot_check', 'lock_image', 'lock_text', 'unlocked_blocks', 'lora', 'lora_alpha', 'epochs',
           'batch_size', 'lr',
           'weight_decay', 'warmup', 'grad_clip', 'grad_accum', 'seed', 'save_every', 'keep_best', 'wise_ft',
           'templates', 'image_column', 'caption_column', 'precision', 'grad_checkpointing', 'device', 'cache_dir',
           'num_workers', 'resume', 'overwrite', 'quiet')


def _run(args) -> int:
    from ..training import finetune

    report = finetune(args.model, args.train, args.out, **{name: getattr(args, name) for name in OPTIONS})
    import os
    if int(os.environ.get('RANK', '0')) != 0:
        return EXIT_OK
    if args.json:
        print_json(report.to_dict())
    else:
        before, after = report.validation_before or {}, report.validation_after or {}
        changes = ''.join(f'; {name} {before[name]:.3f} -> {after[name]:.3f}'
                          for name in ('recall@1', 'zero_shot_acc1', 'check_zero_shot_acc1')
                          if name in before and name in after)
        print(f'fine-tuned {report.train_pairs} pairs for {report.steps} steps; final loss {report.final_loss:.4f}'
              f'{changes}; wrote {report.out} (load it with --model {report.out})')
    if report.skipped:
        print(f'ruclip: skipped {len(report.skipped)} rows that could not be used; each was named above',
              file=sys.stderr)
        return EXIT_SKIPPED
    return EXIT_OK


COMMANDS = {'finetune': Command(_arguments, _run, reads_images=True)}
