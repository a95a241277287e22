"""RuCLIP as a transformers CLIPModel and CLIPProcessor, saved with save_pretrained.

The networks are the same function: openai-CLIP's layout, QuickGELU, LayerNorm eps 1e-5, the text latent
read at the first eos (id 3; transformers takes the first eos_token_id when it is not 2). Only the image
preprocessing differs: CLIPImageProcessor resizes the shortest side and then crops the centre, where
RuCLIP crops the largest centred square and then resizes (the same for square images).
"""
import os
from typing import Dict, List, Optional, Union

import torch

from .._optional import require
from .._outputs import check_export_folder, check_outside, replacing_folder
from ..config import CLIPConfig
from ..model import CLIP
from ..processor import RuCLIPProcessor
from .hf_tokenizer import MIN_TOKENIZERS, build_tokenizer

BILINEAR = 2  # PIL.Image.BILINEAR, as RuCLIP's ImageTransform resizes

_BLOCK_NAMES = [  # ours -> transformers', inside one residual block
    ('attn.out_proj', 'self_attn.out_proj'),
    ('ln_1', 'layer_norm1'),
    ('ln_2', 'layer_norm2'),
    ('mlp.c_fc', 'mlp.fc1'),
    ('mlp.c_proj', 'mlp.fc2'),
]
_LAYER_NORMS = [
    ('visual.ln_pre', 'vision_model.pre_layrnorm'),  # sic: transformers' spelling
    ('visual.ln_post', 'vision_model.post_layernorm'),
    ('ln_final', 'text_model.final_layer_norm'),
]


def export_hf(model: Union[CLIP, str, os.PathLike], out_dir: Union[str, os.PathLike],
              processor: Optional[RuCLIPProcessor] = None, *, lowercase: bool = True, overwrite: bool = False,
              cache_dir: Optional[str] = None, revision: Optional[str] = None,
              token: Optional[Union[str, bool]] = None, local_files_only: bool = False) -> List[str]:
    """Save a transformers CLIPModel and CLIPProcessor into out_dir; return the paths written.

    Afterwards `transformers.CLIPModel.from_pretrained(out_dir)`,
    `CLIPProcessor.from_pretrained(out_dir)` and `pipeline('zero-shot-image-classification',
    model=out_dir)` work without ruclip.

    Args:
        model: a name of ruclip.MODELS or a checkpoint folder, found as ruclip.load finds it, or a
            loaded CLIP together with its processor.
        out_dir: a new or empty folder (never the checkpoint's own, nor one inside it or inside a
            cached model of a Hugging Face cache). The files are written into a temporary folder
            beside it and renamed into place once all are written: a failed export leaves nothing.
        processor: the RuCLIPProcessor loaded with `model`, when model is a loaded CLIP.
        lowercase: whether the saved tokenizer lowercases the text itself.
        overwrite: write into a folder holding files, replacing only files an earlier export wrote.
        cache_dir: as for ruclip.load, when `model` is a name.
        revision: as for ruclip.load.
        token: as for ruclip.load.
        local_files_only: as for ruclip.load.

    Returns:
        The paths written, sorted.

    Raises:
        TypeError: model is neither a CLIP nor a name or folder, or a CLIP came without its processor.
        ValueError: an out_dir that is refused, or a bpe.model the transformers tokenizer cannot
            express exactly (named with the reason).
        ImportError: the `hf` extra is not installed.
    """
    _require_transformers()
    out_dir = check_export_folder(out_dir, model, overwrite)
    if isinstance(model, CLIP):
        if not isinstance(processor, RuCLIPProcessor):
            raise TypeError('export_hf(clip, out_dir, processor) needs the RuCLIPProcessor loaded with the model '
                            f'(its bpe.model and image settings), got processor={type(processor).__name__}')
    elif isinstance(model, (str, os.PathLike)):
        from ..pretrained import checkpoint_folder
        folder = checkpoint_folder(model, cache_dir=cache_dir, revision=revision, token=token,
                                   local_files_only=local_files_only)
        check_outside(out_dir, folder)
        model, processor = CLIP.from_pretrained(folder), RuCLIPProcessor.from_pretrained(folder)
    else:
        raise TypeError(f'model must be a ruclip CLIP, a model name or a checkpoint folder, '
                        f'got {type(model).__name__}')
    hf_model, hf_processor = to_transformers(model, processor, lowercase=lowercase)
    with replacing_folder(out_dir, record=True) as temporary:
        hf_model.save_pretrained(temporary)
        hf_processor.save_pretrained(temporary)
        names = sorted(os.path.relpath(os.path.join(root, name), temporary)
                       for root, _, files in os.walk(temporary) for name in files)
    return [os.path.join(out_dir, name) for name in names]


def to_transformers(model: CLIP, processor: RuCLIPProcessor, *, lowercase: bool = True):
    """The transformers model and processor that compute what `model` and `processor` compute.

    Args:
        model: a loaded ruclip CLIP.
        processor: its RuCLIPProcessor.
        lowercase: whether the tokenizer lowercases the text itself.

    Returns:
        tuple[transformers.CLIPModel, transformers.CLIPProcessor]: the pair, nothing saved.

    Raises:
        TypeError: model is not a ruclip CLIP.
        ValueError: a bpe.model the transformers tokenizer cannot express exactly.
        ImportError: the `hf` extra is not installed.
    """
    transformers = _require_transformers()
    if not isinstance(model, CLIP):
        raise TypeError(f'model must be a ruclip CLIP, got {type(model).__name__}')
    tokenizer = build_tokenizer(processor.tokenizer, context_length=processor.text_seq_length, lowercase=lowercase)
    hf_model, info = transformers.CLIPModel.from_pretrained(
        None, config=hf_config(model.config, float(model.logit_scale.detach()), model.eos_id),
        state_dict=hf_state_dict(model), dtype=model.dtype, output_loading_info=True)
    problems = {kind: keys for kind, keys in info.items() if keys and kind != 'error_msgs'}
    if problems or info.get('error_msgs'):
        raise RuntimeError(f'transformers {transformers.__version__} CLIPModel does not take the converted '
                           f'weights as they are: {problems or info["error_msgs"]}')
    size = processor.image_size
    image_processor = transformers.CLIPImageProcessor(
        do_resize=True, size={'shortest_edge': size}, resample=BILINEAR,
        do_center_crop=True, crop_size={'height': size, 'width': size},
        do_rescale=True, do_normalize=True, image_mean=list(processor.mean), image_std=list(processor.std),
        do_convert_rgb=True)
    return hf_model.eval(), transformers.CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def _require_transformers():
    """The transformers module, after checking it and tokenizers are installed and new enough."""
    transformers = require('transformers', 'hf', 'the transformers export')
    require('tokenizers', 'hf', 'the transformers export', MIN_TOKENIZERS)
    return transformers


def hf_config(config: CLIPConfig, logit_scale: float, eos_id: int = 3):
    """The transformers.CLIPConfig of a RuCLIP config; logit_scale is the log of the temperature's inverse."""
    transformers = require('transformers', 'hf', 'the transformers export')
    if eos_id == 2:
        raise ValueError('transformers reads a CLIP text latent at the largest id when eos_token_id is 2, '
                         'not at the eos; RuCLIP models use eos id 3')
    text = dict(
        vocab_size=config.vocab_size, hidden_size=config.transformer_width,
        intermediate_size=4 * config.transformer_width, num_hidden_layers=config.transformer_layers,
        num_attention_heads=config.transformer_heads, max_position_embeddings=config.context_length,
        projection_dim=config.embed_dim, hidden_act='quick_gelu', layer_norm_eps=1e-5,
        pad_token_id=0, bos_token_id=2, eos_token_id=eos_id)
    vision = dict(
        hidden_size=config.vision_width, intermediate_size=4 * config.vision_width,
        num_hidden_layers=config.vision_layers, num_attention_heads=config.vision_heads,
        image_size=config.image_resolution, patch_size=config.vision_patch_size,
        projection_dim=config.embed_dim, hidden_act='quick_gelu', layer_norm_eps=1e-5)
    return transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=config.embed_dim,
                                   logit_scale_init_value=logit_scale)


def hf_state_dict(model: CLIP) -> Dict[str, torch.Tensor]:
    """Our weights under transformers' CLIPModel names (fresh CPU tensors; attention q, k, v split)."""
    ours = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    theirs = {
        'vision_model.embeddings.patch_embedding.weight': ours['visual.conv1.weight'],
        'vision_model.embeddings.class_embedding': ours['visual.class_embedding'],
        'vision_model.embeddings.position_embedding.weight': ours['visual.positional_embedding'],
        'visual_projection.weight': ours['visual.proj'].t(),  # [width, embed_dim] -> Linear's [embed_dim, width]
        'text_model.embeddings.token_embedding.weight': ours['token_embedding.weight'],
        'text_model.embeddings.position_embedding.weight': ours['positional_embedding'],
        'text_projection.weight': ours['text_projection'].t(),
        'logit_scale': ours['logit_scale'],
    }
    for src, dst in _LAYER_NORMS:
        for kind in ('weight', 'bias'):
            theirs[f'{dst}.{kind}'] = ours[f'{src}.{kind}']
    for src, dst, layers in (('visual.transformer', 'vision_model.encoder', model.config.vision_layers),
                             ('transformer', 'text_model.encoder', model.config.transformer_layers)):
        for i in range(layers):
            theirs.update(_block(ours, f'{src}.resblocks.{i}.', f'{dst}.layers.{i}.'))
    return {name: tensor.clone().contiguous() for name, tensor in theirs.items()}


def _block(ours: Dict[str, torch.Tensor], src: str, dst: str) -> Dict[str, torch.Tensor]:
    block = {}
    for kind in ('weight', 'bias'):
        q, k, v = ours[f'{src}attn.in_proj_{kind}'].chunk(3)  # [3 * width, ...] -> 3 x [width, ...]
        block.update({f'{dst}self_attn.q_proj.{kind}': q, f'{dst}self_attn.k_proj.{kind}': k,
                      f'{dst}self_attn.v_proj.{kind}': v})
        for a, b in _BLOCK_NAMES:
            block[f'{dst}{b}.{kind}'] = ours[f'{src}{a}.{kind}']
    return block

