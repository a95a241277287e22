"""`ruclip eval zeroshot|linear-probe|retrieval|scoreboard|report`: RuCLIP (and peers: transformers dual
encoders, open_clip models) on benchmark datasets, the shared Russian benchmarks, and your own."""
import argparse
import os
import sys

from ._common import (DEFAULT_MODEL, EXIT_OK, Command, UsageError, add_model_options, load_predictor, model_device,
                      model_folders, positive_int, print_json, print_table)

MODEL_HELP = (f'a model of `ruclip models` or a RuCLIP checkpoint folder (default: {DEFAULT_MODEL}); or a peer: '
              'a transformers dual encoder (CLIPModel, SiglipModel, AltCLIPModel) by Hub name or save_pretrained '
              'folder, or open_clip:ARCH[@PRETRAINED] (ARCH may be a model-config .json file)')



def _arguments(parser):
    tasks = parser.add_subparsers(dest='task', required=True, metavar='TASK')
    zeroshot = tasks.add_parser('zeroshot', help='zero-shot classification with Russian class names and templates')
    _data_options(zeroshot)
    zeroshot.add_argument('--order', choices=('clip', 'predictor'), default='clip',
                          help="how template latents make a class's weights: 'clip' normalises each, averages, "
                               "renormalises (CLIP, CLIP_benchmark); 'predictor' averages the raw latents, then "
                               'normalises (ruclip.Predictor) (default: clip)')
    zeroshot.add_argument('--plot', metavar='PNG', help='also draw the confusion matrix and per-class recall [plot]')
    _run_options(zeroshot)
    probe = tasks.add_parser('linear-probe', help='logistic regression on frozen image latents')
    _data_options(probe)
    probe.add_argument('--train-split', help="the split to fit on (default: the dataset's train split)")
    probe.add_argument('--val-split', help="the validation split for the C sweep (default: the dataset's, or 20%% "
                                           'of train, stratified and seeded)')
    probe.add_argument('--protocol', choices=('clip', 'simple'), default='clip',
                       help="'clip': C swept on validation then refit on train+val (CLIP paper); 'simple': "
                            "sklearn's defaults on train (the RuCLIP README's example) (default: clip)")
    probe.add_argument('--seed', type=int, default=0, help='for the validation split carved from train (default 0)')
    _run_options(probe)
    retrieval = tasks.add_parser('retrieval', help='text->image and image->text recall@k over captioned images')
    _data_options(retrieval, classification=False)
    retrieval.add_argument('--k', type=positive_int, nargs='+', default=[1, 5, 10], help='recall@k (default 1 5 10)')
    _run_options(retrieval)
    board = tasks.add_parser('scoreboard', help='models x the shared Russian benchmarks (and the README datasets), '
                                                'one table beside the published figures')
    board.add_argument('--models', nargs='+', metavar='MODEL', default=None,
                       help='RuCLIP models or folders and peers, as --model takes them '
                            '(default: the six RuCLIP models)')
    board.add_argument('--benchmarks', nargs='+', metavar='NAME', default=None,
                       help='protocols (xm3600-immich, xm3600-mteb, xtd10, coco-sm, babel-imagenet, '
                            'babel-imagenet-label) and README datasets scored zero-shot (cifar10, food101, ...); '
                            'default: the protocols')
    board.add_argument('--data-root', metavar='FOLDER', help='a folder with one subfolder per benchmark: xm3600, '
                       'xm3600_mteb, xtd10, coco_sm, imagenet (Babel-ImageNet), and each README dataset by name')
    board.add_argument('--root', action='append', default=[], metavar='NAME=PATH',
                       help="one benchmark's folder, overriding --data-root (repeatable)")
    board.add_argument('--out-dir', required=True, metavar='FOLDER',
                       help='results go to FOLDER/<model>/<benchmark>.json (read back when already there for the '
                            'same model: the run resumes) and the table to FOLDER/scoreboard.md')
    board.add_argument('--download', action='store_true', help='fetch the data where its source allows it')
    add_model_options(board, model_default=None, model_help=argparse.SUPPRESS)  # --models instead
    group = board.add_argument_group('run')
    group.add_argument('--feature-cache', metavar='FOLDER',
                       help='where image latents are cached (default: ~/.cache/ruclip/eval-features)')
    group.add_argument('--no-cache', action='store_true', help='compute image latents without the cache')
    report = tasks.add_parser('report', help='a markdown table of result files beside the RuCLIP README figures')
    report.add_argument('results', nargs='+', metavar='RESULT_JSON', help='files written by --out')
    report.add_argument('--out', metavar='MD', help='also write the table to this file')


def _data_options(parser, classification=True):
    group = parser.add_argument_group('data')
    group.add_argument('--dataset', required=True, metavar='NAME',
                       help='cifar10, imagenet1k, food101, ... (the RuCLIP table\'s), or imagefolder, csv, jsonl, '
                            'wds (a CLIP_benchmark webdataset folder), hateful_memes, birdsnap, or a shared Russian '
                            'benchmark: xm3600, xm3600_mteb, xtd10, coco_sm (--split google|bing|nllb), '
                            'babel_imagenet, babel_imagenet_label')
    group.add_argument('--root', required=True, metavar='PATH', help='the data folder (csv / jsonl: the file)')
    group.add_argument('--split', help="the split to score (default: the test split CLIP's paper used)")
    group.add_argument('--download', action='store_true', help="let the torchvision loader download the data")
    if classification:
        group.add_argument('--classnames', metavar='FILE', help='Russian class names, one a line in label order '
                                                                '(default: the shipped ones)')
        group.add_argument('--templates', metavar='FILE', help="templates, one a line with '{}' (default: shipped)")


def _run_options(parser):
    add_model_options(parser, model_help=MODEL_HELP)
    group = parser.add_argument_group('run')
    group.add_argument('--out', metavar='JSON', help='write the result record here (CLIP_benchmark\'s shape)')
    group.add_argument('--feature-cache', metavar='FOLDER',
                       help='where image latents are cached (default: ~/.cache/ruclip/eval-features)')
    group.add_argument('--no-cache', action='store_true', help='compute image latents without the cache')
    group.add_argument('--json', action='store_true', help='print the whole record as JSON')


def _run(args) -> int:
    if args.task == 'report':
        return _report(args)
    if args.task == 'scoreboard':
        return _scoreboard(args)
    from .._outputs import check_not_input, check_writable_file, within
    from ..evaluation import harness
    from ..evaluation.datasets import DATASETS, load_split
    from ..evaluation.features import default_cache_dir
    from ..evaluation.prompts import read_lines

    outputs = [(path, what) for path, what in ((args.out, '--out'), (getattr(args, 'plot', None), '--plot')) if path]
    if len(outputs) == 2 and os.path.abspath(args.out) == os.path.abspath(args.plot):
        raise UsageError(f'--out and --plot name the same file, {args.out}: give each its own')
    given = [args.root] + [path for path in (getattr(args, 'classnames', None), getattr(args, 'templates', None)) if path]
    if os.path.isdir(args.root):  # every file already in a dataset folder is data: images, shards, lists
        given += [path for path, _ in outputs if os.path.isfile(path) and within(path, args.root)]
    for path, what in outputs:
        check_writable_file(path, what, inputs=given, inside=model_folders(args))
    extra = {}
    if getattr(args, 'classnames', None):
        extra['classnames'] = read_lines(args.classnames)
    if getattr(args, 'templates', None):
        extra['templates'] = read_lines(args.templates)
    cache = None if args.no_cache else (args.feature_cache or default_cache_dir())
    if args.task == 'linear-probe':
        spec = DATASETS.get(args.dataset)
        train_split = args.train_split or (spec.train if spec else None)
        if train_split is None and spec:
            raise UsageError(f"torchvision's {args.dataset} has no train split: write your partition as two image "
                             f"folders or CSV files and use --dataset imagefolder or csv")
        if train_split is None:
            raise UsageError(f'--train-split is needed for dataset {args.dataset}')
    test = load_split(args.dataset, args.root, args.split, download=args.download, **extra)
    splits = [test]
    if args.task == 'linear-probe':
        train = load_split(args.dataset, args.root, train_split, download=args.download, **extra)
        val_split = args.val_split or (spec.val if spec else None)
        val = load_split(args.dataset, args.root, val_split, **extra) if val_split and args.protocol == 'clip' else None
        splits += [train] + ([val] if val else [])
    images = [image for split in splits if isinstance(split.images, list) for image in split.images
              if isinstance(image, (str, os.PathLike))]  # the files a CSV, JSONL or image folder names
    for path, what in outputs:
        check_not_input(path, what, inputs=images)
    predictor = load_eval_model(args)
    if args.task == 'zeroshot':
        record = harness.evaluate_zeroshot(predictor, test, args.model, order=args.order, cache_dir=cache)
    elif args.task == 'retrieval':
        record = harness.evaluate_retrieval(predictor, test, args.model, ks=args.k, cache_dir=cache)
    else:
        if train.source == test.source:
            raise UsageError(f'the train and test splits are the same data ({train.split}); '
                             f'give --split and --train-split')
        record = harness.evaluate_linear_probe(predictor, train, test, args.model, protocol=args.protocol, val=val,
                                               cache_dir=cache, seed=args.seed)
    from ..evaluation.scoreboard import runtime
    record['runtime'] = runtime(predictor)  # int8 and fp32 figures differ a little
    if args.out:
        from ..evaluation.results import write_result
        write_result(record, args.out)
    if getattr(args, 'plot', None):
        from .._outputs import replacing
        from ..evaluation.plots import confusion_figure
        with replacing(args.plot) as temporary:
            confusion_figure(record).savefig(temporary, format='png')
    if args.json:
        print_json(record)
    else:
        rows = [[name, '' if value is None else f'{value:.4f}'] for name, value in record['metrics'].items()]
        runtime = record['runtime']
        print(f"{record['dataset']} ({record['split']}, {record['n_images']} images), {record['task']}, {args.model} "
              f"({runtime['backend']} {runtime['dtype']})")
        print_table(['metric', 'value'], rows)
    return EXIT_OK


def load_eval_model(args):
    """A ruclip.Predictor for a RuCLIP --model, else the peer it names (ruclip.evaluation.models)."""
    from ..evaluation.models import load_peer, model_kind

    if model_kind(args.model) == 'ruclip':
        return load_predictor(args)
    if args.backend == 'openvino' or args.dtype not in ('auto', 'fp32'):
        raise UsageError(f'--model {args.model}: peers run on PyTorch in fp32; leave --backend and --dtype at auto')
    return load_peer(args.model, model_device(args), cache_dir=args.cache_dir, batch_size=args.batch_size,
                     quiet=args.quiet)


def _scoreboard(args) -> int:
    from .._outputs import atomic_open
    from ..evaluation.features import default_cache_dir
    from ..evaluation.protocols import PROTOCOLS
    from ..evaluation.scoreboard import benchmark_names, run_scoreboard, scoreboard_table
    from ..pretrained import MODELS
    from ._common import EXIT_FAILED

    roots = {}
    for value in args.root:
        name, sep, path = value.partition('=')
        if not sep or not name or not path:
            raise UsageError(f'--root takes NAME=PATH, got {value!r}')
        if name not in benchmark_names():
            raise UsageError(f'--root {value}: {name!r} is not a benchmark; choose among {benchmark_names()}')
        roots[name] = path

    def load(model):
        return load_eval_model(argparse.Namespace(**{**vars(args), 'model': model}))

    cache = None if args.no_cache else (args.feature_cache or default_cache_dir())
    records, failures = run_scoreboard(args.models or list(MODELS), args.benchmarks or list(PROTOCOLS), load,
                                       args.out_dir, data_root=args.data_root, roots=roots, cache_dir=cache,
                                       download=args.download)
    table = scoreboard_table(records)
    os.makedirs(args.out_dir, exist_ok=True)
    with atomic_open(os.path.join(args.out_dir, 'scoreboard.md'), 'w', encoding='utf-8') as file:
        file.write(table)
    sys.stdout.write(table)
    for failure in failures:
        print(f'ruclip: not scored: {failure}', file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK


def _report(args) -> int:
    from ..evaluation.results import read_results, report_table
    from ..evaluation.scoreboard import from_scoreboard, scoreboard_table

    records = read_results(args.results)
    scored = [record for record in records if from_scoreboard(record)]
    others = [record for record in records if not from_scoreboard(record)]
    table = '\n'.join(([scoreboard_table(scored)] if scored else []) + ([report_table(others)] if others else []))
    if args.out:
        from .._outputs import atomic_open, check_writable_file
        check_writable_file(args.out, '--out', inputs=args.results)
        with atomic_open(args.out, 'w', encoding='utf-8') as file:
            file.write(table)
    sys.stdout.write(table)
    return EXIT_OK


COMMANDS = {'eval': Command(_arguments, _run)}
