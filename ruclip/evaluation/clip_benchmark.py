"""A RuCLIP model loader for CLIP_benchmark (LAION-AI/CLIP_benchmark), which has none.

load_ruclip has CLIP_benchmark's model-loader signature and returns (model, transform, tokenizer)
as its loaders do: model.encode_image(pixel_values), model.encode_text(tokens) give raw latents
(CLIP_benchmark normalises them), transform turns a PIL image into the model's pixel_values, and
tokenizer(texts) gives the [n, text_seq_length] token ids. register() adds it as model type
'ruclip', so that

    python -c "import sys; from ruclip.evaluation.clip_benchmark import register; register(); \
from clip_benchmark.cli import main; sys.exit(main())" eval --model_type ruclip \
        --model ruclip-vit-base-patch32-224 --dataset cifar10 --language ru \
        --custom_classname_file ru_classnames.json --custom_template_file ru_zeroshot_classification_templates.json

runs CLIP_benchmark's own evaluation on RuCLIP (ruclip.evaluation.prompts.write_clip_benchmark_files
writes the two JSON files). Pass --amp False on CPU: autocast would run the model in bfloat16.
"""
from typing import Optional, Sequence, Union

import torch

from .._optional import require
from ..pretrained import load

MODEL_TYPE = 'ruclip'


class RuCLIPTokenizer:
    """texts -> [n, text_seq_length] long token ids, the way RuCLIPProcessor pads them."""

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, texts: Union[str, Sequence[str]]) -> torch.Tensor:
        texts = [texts] if isinstance(texts, str) else list(texts)
        return self.processor.pad([self.processor.tokenize(text) for text in texts])


def load_ruclip(model_name: str = 'ruclip-vit-base-patch32-224', pretrained: Optional[str] = None,
                cache_dir: Optional[str] = None, device: Union[str, torch.device] = 'cpu', **_):
    """(model, transform, tokenizer) for CLIP_benchmark. model_name: a model of `ruclip models` or a
    checkpoint folder; pretrained: a checkpoint folder that overrides it (CLIP_benchmark's
    --pretrained), or None / '' / 'openai' (its default) to use model_name."""
    source = pretrained if pretrained and pretrained != 'openai' else model_name
    clip, processor = load(source, device=device, cache_dir=cache_dir)
    transform = processor.image_transform  # PIL image -> [3, S, S] float32
    return clip.eval(), transform, RuCLIPTokenizer(processor)


def register() -> None:
    """Make 'ruclip' a --model_type of CLIP_benchmark (its table of loaders, in this process)."""
    models = require('clip_benchmark.models', 'eval', 'the CLIP_benchmark plug-in')
    models.TYPE2FUNC[MODEL_TYPE] = load_ruclip
    if MODEL_TYPE not in models.MODEL_TYPES:
        models.MODEL_TYPES.append(MODEL_TYPE)
