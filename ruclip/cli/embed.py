"""`ruclip embed`: image latents of files and folders to a .npy or .npz file, or to a folder of
shards in the clip-retrieval layout (ruclip.distributed), locally or on Ray."""
import os

from ._common import (EXIT_OK, EXIT_SKIPPED, Command, UsageError, add_exact_decode_option, add_model_options,
                      exit_code, load_predictor, model_device, model_folders, positive_int)

FILE_SUFFIXES = ('.npy', '.npz')
SHARD_OPTIONS = dict(engine='local', partitions=None, partition=None, input_format='auto', image_column=None,
                     caption_column=None, texts=False, url_timeout=10.0, overwrite=False,
                     ray_address=None, actors=None, gpus_per_actor=1.0, cpus_per_actor=1.0, exact_decode=False)


def _embed_arguments(parser):
    parser.add_argument('images', nargs='+', metavar='INPUT',
                        help='image files and folders; with --out FOLDER also .parquet/.csv/.jsonl tables of paths '
                             'or URLs, or webdataset .tar shards')
    parser.add_argument('--out', required=True, metavar='FILE_OR_FOLDER',
                        help='.npz: arrays latents [n, embed_dim] float32, files, model and model_identity; '
                             '.npy: the latents, the files one a line in FILE.files.txt and the model in '
                             'FILE.model.json; '
                             'a folder (no extension): resumable shards in the clip-retrieval layout, '
                             'img_emb/, metadata/, _manifest.json, ...')
    add_model_options(parser)
    shards = parser.add_argument_group('sharded output (--out FOLDER)')
    shards.add_argument('--engine', choices=('local', 'ray'), default='local',
                        help='local: this process (default); ray: Ray Data with model actors (ruclip[ray])')
    shards.add_argument('--partitions', type=positive_int, metavar='N',
                        help='partitions (shards) to cut the input into, by index modulo N '
                             '(default: one per 100,000 images or rows, one per .tar shard)')
    shards.add_argument('--partition', type=_partition, metavar='I/N',
                        help='embed only partition I of N (0 <= I < N): one SLURM array task')
    shards.add_argument('--input-format', choices=('auto', 'files', 'table', 'tar'), default='auto',
                        help='auto (default): table if every input ends in .parquet/.csv/.jsonl, tar if in .tar')
    shards.add_argument('--image-column', metavar='NAME',
                        help='table column of image paths or http(s) URLs (default: image_path, url, path, image '
                             'or filepath, the first there)')
    shards.add_argument('--caption-column', metavar='NAME', help='table column of captions (default: caption or text)')
    shards.add_argument('--texts', action='store_true', help='also embed the captions, into text_emb/')
    add_exact_decode_option(shards)
    shards.add_argument('--url-timeout', type=float, default=10.0, metavar='SECONDS',
                        help='seconds to wait for each URL (default 10); a URL that fails is recorded in failed/')
    shards.add_argument('--overwrite', action='store_true',
                        help='delete shards of another run (other model, dtype, input...) in --out and start again: '
                             'only the files a run writes; a folder without _manifest.json is never touched')
    shards.add_argument('--ray-address', metavar='ADDRESS',
                        help='the Ray cluster to use (default: RAY_ADDRESS, else a new local one)')
    shards.add_argument('--actors', type=positive_int, metavar='N',
                        help='Ray model actors (default: one per GPU, or 1 without GPUs)')
    shards.add_argument('--gpus-per-actor', type=float, default=1.0, metavar='F',
                        help='GPUs per Ray actor where there are GPUs; 0.5 puts two actors on a GPU (default 1)')
    shards.add_argument('--cpus-per-actor', type=float, default=1.0, metavar='F',
                        help='CPUs each Ray actor reserves (default 1); its Predictor decodes images in threads')


def _partition(value: str):
    try:
        index, count = (int(part) for part in value.split('/'))
    except ValueError:
        raise _argument_error(f'expected I/N such as 0/8, got {value!r}') from None
    if count < 1 or not 0 <= index < count:
        raise _argument_error(f'expected I/N with 0 <= I < N, got {value!r}')
    return index, count


def _argument_error(message):
    import argparse
    return argparse.ArgumentTypeError(message)


def _run_embed(args) -> int:
    out = args.out
    suffix = os.path.splitext(out.rstrip('/'))[1]
    if out.endswith(FILE_SUFFIXES) and not out.endswith('/'):
        given = [name for name, default in SHARD_OPTIONS.items() if getattr(args, name) != default]
        if given:
            raise UsageError(f'--{given[0].replace("_", "-")} is for sharded output: give --out a folder name '
                             f'(no .npy/.npz), or leave it out')
        return _run_single_file(args)
    if suffix and not os.path.isdir(out) and not out.endswith('/'):
        raise UsageError(f'--out must end in .npy or .npz, got {out} (or name a folder, without an extension, '
                         f'for sharded output)')
    return _run_sharded(args)


def _run_single_file(args) -> int:
    import json

    import numpy as np

    from .._outputs import atomic_open, check_writable_file, replacing_together, reporting_full_disk
    from ..image_files import find_images
    from ..retrieval import embed_images
    from ..search.importers import identity_path

    out = args.out
    listing = out[:-len('.npy')] + '.files.txt'
    outputs = [out] if out.endswith('.npz') else [out, listing, identity_path(out)]
    files = find_images(args.images)
    for path in outputs:
        check_writable_file(path, '--out', inputs=[*args.images, *files], inside=model_folders(args))
    predictor = load_predictor(args)
    embeddings = embed_images(predictor, files)
    latents = embeddings.latents.float().cpu().numpy()
    identity = json.dumps(predictor.identity.to_dict())  # which model made them: checked by `ruclip index`
    with reporting_full_disk(outputs, latents.nbytes + sum(len(os.fsencode(path)) + 1 for path in embeddings.files)):
        if out.endswith('.npz'):
            with atomic_open(out) as file:
                np.savez(file, latents=latents, files=np.array(embeddings.files), model=np.array(args.model),
                         model_identity=np.array(identity))
        else:
            with replacing_together(outputs) as (latents_path, listing_path, identity_file):  # all, or none
                np.save(latents_path, latents)
                with open(listing_path, 'w', encoding='utf-8', errors='surrogateescape') as listing_file:
                    listing_file.writelines(f'{path}\n' for path in embeddings.files)
                with open(identity_file, 'w', encoding='utf-8') as file:
                    file.write(identity)
    written = out if out.endswith('.npz') else f'{out}, {listing} and {identity_path(out)}'
    print(f'wrote {latents.shape[0]} image latents of {latents.shape[1]} dimensions to {written}')
    return exit_code(embeddings.skipped, len(files))


def _runtime(args):
    """(backend, dtype) of the model options resolved here, once, for the manifest and every worker:
    'auto' becomes what it picks on this machine (OpenVINO's 'auto' per checkpoint: int8 or not)."""
    from ..backends import resolve
    from ..pretrained import checkpoint_folder

    backend, dtype = resolve(args.backend, args.dtype, model_device(args))
    if backend == 'openvino':
        if dtype == 'auto':
            from ..backends.openvino import auto_precision
            dtype = auto_precision(checkpoint_folder(args.model, cache_dir=args.cache_dir))
        return backend, dtype
    return backend, str(dtype).removeprefix('torch.')


def _run_sharded(args) -> int:
    import sys

    from .._outputs import check_not_input
    from ..distributed import Settings, list_inputs, run_local, run_ray

    from ..distributed.manifest import written_paths

    check_not_input(args.out, '--out', inside=model_folders(args))
    for path in written_paths(args.out):
        check_not_input(path, '--out', inputs=args.images)
    inputs = list_inputs(args.images, args.input_format, args.image_column, args.caption_column)
    count = args.partitions
    only = None
    if args.partition is not None:
        index, count_given = args.partition
        if count is not None and count != count_given:
            raise UsageError(f'--partition {index}/{count_given} and --partitions {count} disagree')
        count, only = count_given, [index]
    if count is None:
        count = len(inputs.units) if inputs.kind == 'tars' else -(-len(inputs.units) // 100_000)
    backend, dtype = _runtime(args)
    settings = Settings(model=args.model, out=args.out.rstrip('/') or '/', partition_count=count,
                        device=None if args.device is None else str(args.device), backend=backend, dtype=dtype,
                        batch_size=args.batch_size, cache_dir=args.cache_dir, texts=args.texts,
                        url_timeout=args.url_timeout, quiet=args.quiet, jpeg_draft=not args.exact_decode)
    if args.engine == 'ray':
        report = run_ray(inputs, settings, only=only, overwrite=args.overwrite, address=args.ray_address,
                         actors=args.actors, gpus_per_actor=args.gpus_per_actor,
                         cpus_per_actor=args.cpus_per_actor)
    else:
        report = run_local(inputs, settings, only=only, overwrite=args.overwrite)
    print(report.summary(settings.out))
    if report.failed:
        print(f'ruclip: {report.failed} rows could not be embedded; each is listed with its reason in '
              f'{os.path.join(settings.out, "failed")}', file=sys.stderr)
        return EXIT_SKIPPED
    return EXIT_OK


COMMANDS = {'embed': Command(_embed_arguments, _run_embed, reads_images=True)}
