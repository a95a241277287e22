"""`ruclip eval zeroshot|linear-probe|retrieval|report`: RuCLIP on benchmark datasets and your own."""
import os
import sys

from ._common import (EXIT_OK, Command, UsageError, add_model_options, load_predictor, model_folders, positive_int,
                      print_json, print_table)



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
    report = tasks.add_parser('report', help='a markdown table of result files beside the RuCLIP README figures')
    report.add_argument('results', nargs='+', metavar='RESULT_JSON', help='files written by --out')
    report.add_argument('--out', metavar='MD', help='also write the table to this file')


def _data_options(parser, classification=True):
    group = parser.add_argument_group('data')
    group.add_argument('--dataset', required=True, metavar='NAME',
                       help='cifar10, imagenet1k, food101, ... (the RuCLIP table\'s), or imagefolder, csv, jsonl, '
                            'wds (a CLIP_benchmark webdataset folder), hateful_memes, birdsnap')
    group.add_argument('--root', required=True, metavar='PATH', help='the data folder (csv / jsonl: the file)')
    group.add_argument('--split', help="the split to score (default: the test split CLIP's paper used)")
    group.add_argument('--download', action='store_true', help="let the torchvision loader download the data")
    if classification:
        group.add_argument('--classnames', metavar='FILE', help='Russian class names, one a line in label order '
                                                                '(default: the shipped ones)')
        group.add_argument('--templates', metavar='FILE', help="templates, one a line with '{}' (default: shipped)")


def _run_options(parser):
    add_model_options(parser)
    group = parser.add_argument_group('run')
    group.add_argument('--out', metavar='JSON', help='write the result record here (CLIP_benchmark\'s shape)')
    group.add_argument('--feature-cache', metavar='FOLDER',
                       help='where image latents are cached (default: ~/.cache/ruclip/eval-features)')
    group.add_argument('--no-cache', action='store_true', help='compute image latents without the cache')
    group.add_argument('--json', action='store_true', help='print the whole record as JSON')


def _run(args) -> int:
    if args.task == 'report':
        return _report(args)
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
    predictor = load_predictor(args)
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
    from ..backends import runtime_of
    record['runtime'] = runtime_of(predictor.clip_model)  # int8 and fp32 figures differ a little
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


def _report(args) -> int:
    from ..evaluation.results import read_results, report_table

    table = report_table(read_results(args.results))
    if args.out:
        from .._outputs import atomic_open, check_writable_file
        check_writable_file(args.out, '--out', inputs=args.results)
        with atomic_open(args.out, 'w', encoding='utf-8') as file:
            file.write(table)
    sys.stdout.write(table)
    return EXIT_OK


COMMANDS = {'eval': Command(_arguments, _run)}
