"""`ruclip embed`: image latents of files and folders to a .npy or .npz file."""
from ._common import Command, UsageError, add_model_options, exit_code, load_predictor


def _embed_arguments(parser):
    parser.add_argument('images', nargs='+', metavar='IMAGE_OR_FOLDER', help='image files and folders of them')
    parser.add_argument('--out', required=True, metavar='FILE',
                        help='.npz: arrays latents [n, embed_dim] float32, files and model; '
                             '.npy: the latents, and the files one a line in FILE.files.txt')
    add_model_options(parser)


def _run_embed(args) -> int:
    import numpy as np

    from .._outputs import atomic_open, check_writable_file
    from ..image import find_images
    from ..retrieval import embed_images

    out = args.out
    if not out.endswith(('.npy', '.npz')):
        raise UsageError(f'--out must end in .npy or .npz, got {out}')
    listing = out[:-len('.npy')] + '.files.txt'
    outputs = [out] if out.endswith('.npz') else [out, listing]
    files = find_images(args.images)
    for path in outputs:
        check_writable_file(path, '--out', inputs=files)
    embeddings = embed_images(load_predictor(args), files)
    latents = embeddings.latents.float().cpu().numpy()
    if out.endswith('.npz'):
        with atomic_open(out) as file:
            np.savez(file, latents=latents, files=np.array(embeddings.files), model=np.array(args.model))
        written = out
    else:
        with atomic_open(out) as latents_file, atomic_open(listing, 'w', encoding='utf-8',
                                                           errors='surrogateescape') as listing_file:
            np.save(latents_file, latents)
            listing_file.writelines(f'{path}\n' for path in embeddings.files)
        written = f'{out} and {listing}'
    print(f'wrote {latents.shape[0]} image latents of {latents.shape[1]} dimensions to {written}')
    return exit_code(embeddings.skipped, len(files))


COMMANDS = {'embed': Command(_embed_arguments, _run_embed, reads_images=True)}
