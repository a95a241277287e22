"""int8 post-training quantisation of the OpenVINO towers (NNCF), weights and activations.

Calibration needs inputs whose activations look like real ones: generated photo-like pictures (a sky
and ground gradient, blurred shapes, sensor noise) through the model's own RuCLIPProcessor, and
Russian prompts (the Predictor's templates around everyday nouns). A second, disjoint set of each
checks the result: the lowest cosine between int8 and PyTorch fp32 latents, per tower, is kept in
the cache entry, and int8 is only taken as a default (backend='auto') when both reach MIN_COSINE.
"""
import contextvars
import logging
import os
import sys
from contextlib import contextmanager, nullcontext, redirect_stdout
from typing import Dict, Iterator, List, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ._imports import import_nncf

MIN_COSINE = 0.995  # int8 latents against fp32 ones, lowest over the check set, for int8 to be a default
SMOOTH_QUANT_ALPHA = 0.5  # NNCF's default for transformers is 0.95; 0.5 was closer to fp32 on both towers
CALIBRATION_IMAGES = 32
CHECK_IMAGES = 16
TEXT_BATCH = 32
_NNCF_OUTPUT = contextvars.ContextVar('nncf_output', default=True)  # False within without_nncf_output()
NOUNS = [
    'кошка', 'собака', 'лошадь', 'птица', 'рыба', 'дом', 'машина', 'автобус', 'велосипед', 'самолёт', 'корабль',
    'поезд', 'дерево', 'цветок', 'гора', 'река', 'море', 'лес', 'город', 'улица', 'мост', 'человек', 'ребёнок',
    'девушка', 'мужчина', 'стол', 'стул', 'книга', 'телефон', 'компьютер', 'чашка кофе', 'торт', 'яблоко',
    'пицца', 'снег', 'закат', 'пляж', 'небо с облаками', 'красный автомобиль', 'старая церковь',
]
TEMPLATES = ['{}', 'фото, на котором изображено {}', 'изображение с {}', 'картинка с {}', 'фото с {}',
             'на фото видно {}']


def photo_like(count: int, seed: int, size: Tuple[int, int] = (480, 360)) -> list:
    """`count` RGB PIL images of `size` (width, height): a gradient, a few blurred ellipses and boxes, noise."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    width, height = size
    images = []
    for _ in range(count):
        top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        ramp = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]  # [H, 1, 1]
        background = (top * (1 - ramp) + bottom * ramp).repeat(width, axis=1)  # [H, W, 3]
        image = Image.fromarray(background.astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(rng.integers(2, 7)):
            x0, y0 = rng.integers(0, width), rng.integers(0, height)
            box = [x0, y0, x0 + rng.integers(20, width // 2), y0 + rng.integers(20, height // 2)]
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape(box, fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 3))))
        pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, 8, (height, width, 3)).astype(np.float32)
        images.append(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)))
    return images


def prompts(part: int) -> List[str]:
    """Russian prompts: part 0 (calibration) and part 1 (the check) share no (template, noun) pair."""
    pairs = [template.format(noun) for template in TEMPLATES for noun in NOUNS]
    return pairs[part::2]


def text_batches(processor, texts: List[str]) -> List[np.ndarray]:
    """input_ids batches of TEXT_BATCH texts, each cut after its last eos, as encode_text runs them."""
    batches = []
    for start in range(0, len(texts), TEXT_BATCH):
        ids = processor(text=texts[start:start + TEXT_BATCH])['input_ids']  # [B, context_length]
        length = int((ids == processor.eos_id).int().argmax(dim=1).max()) + 1
        batches.append(ids[:, :length].numpy())
    return batches


def quantize_towers(clip, processor, image_model, text_model, compile_f32) -> Tuple[object, object, Dict[str, float]]:
    """(int8 image ov.Model, int8 text ov.Model, {'image': cosine, 'text': cosine}).

    compile_f32(ov_model) -> a callable compiled model, used to run the check set.
    """
    nncf = import_nncf()
    with _nncf_output(), _no_cuda_warning():
        return _quantize(nncf, clip, processor, image_model, text_model, compile_f32)


def _quantize(nncf, clip, processor, image_model, text_model, compile_f32):
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, AdvancedSmoothQuantParameters

    options = dict(model_type=nncf.ModelType.TRANSFORMER, advanced_parameters=AdvancedQuantizationParameters(
        smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=SMOOTH_QUANT_ALPHA)))
    size = (clip.config.image_resolution * 4 // 3, clip.config.image_resolution)  # 4:3, as the processor will crop
    calibration_images = _image_batches(processor, photo_like(CALIBRATION_IMAGES, seed=1, size=size))
    image_q = nncf.quantize(image_model, nncf.Dataset(calibration_images), subset_size=len(calibration_images),
                            **options)
    calibration_texts = text_batches(processor, prompts(0))
    text_q = nncf.quantize(text_model, nncf.Dataset(calibration_texts), subset_size=len(calibration_texts),
                           **options)
    check_images = _image_batches(processor, photo_like(CHECK_IMAGES, seed=2, size=size))
    check_texts = text_batches(processor, prompts(1))
    with torch.inference_mode():
        image_ref = [clip.visual(torch.from_numpy(x)) for x in check_images]
        text_ref = [clip.encode_text(torch.from_numpy(x)) for x in check_texts]
    cosines = {'image': _lowest_cosine(compile_f32(image_q), check_images, image_ref),
               'text': _lowest_cosine(compile_f32(text_q), check_texts, text_ref)}
    return image_q, text_q, cosines


@contextmanager
def without_nncf_output() -> Iterator[None]:
    """Within it, an int8 build shows none of NNCF's log lines and progress bars (the command line's -q)."""
    token = _NNCF_OUTPUT.set(False)
    try:
        yield
    finally:
        _NNCF_OUTPUT.reset(token)


@contextmanager
def _nncf_output() -> Iterator[None]:
    """NNCF's log lines and progress bars on stderr, as stdout is the caller's (`ruclip classify --json > x`),
    or nowhere within without_nncf_output()."""
    with open(os.devnull, 'w') if not _NNCF_OUTPUT.get() else nullcontext(sys.stderr) as stream:
        handlers = [h for h in logging.getLogger('nncf').handlers
                    if isinstance(h, logging.StreamHandler) and h.stream is sys.stdout]
        for handler in handlers:
            handler.setStream(stream)
        try:
            with redirect_stdout(stream):  # rich's progress bars write to whatever sys.stdout is
                yield
        finally:
            for handler in handlers:
                handler.setStream(sys.stdout)


@contextmanager
def _no_cuda_warning():
    """No "No CUDA runtime is found" warning from torch.utils.cpp_extension, which NNCF imports while it
    looks for a torch model among quantize's inputs (they are OpenVINO models here)."""
    logger = logging.getLogger('torch.utils.cpp_extension')
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _image_batches(processor, images: list, batch: int = 8) -> List[np.ndarray]:
    return [processor(images=images[i:i + batch])['pixel_values'].numpy() for i in range(0, len(images), batch)]


def _lowest_cosine(compiled, inputs: List[np.ndarray], references: List[torch.Tensor]) -> float:
    lowest = 1.0
    for x, reference in zip(inputs, references):
        latents = torch.from_numpy(compiled(x)[0])
        lowest = min(lowest, float(F.cosine_similarity(latents, reference.float(), dim=-1).min()))
    return lowest
