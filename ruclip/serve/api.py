"""The JSON API: /v1/embeddings (OpenAI's shape, infinity's `modality`), /v1/classify, /v1/rank, /v1/models.

Latents are the Predictor's (towers.Towers); classify and rank are ruclip.classify and ruclip.rank
run on them, so a client gets what the library computes.
"""
import base64
from typing import List, Literal, Optional, Union

import numpy as np
import orjson
import torch
from fastapi import APIRouter
from starlette.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from .towers import BadInput, decode_images

MAX_K = 1000


class EmbeddingRequest(BaseModel):
    """OpenAI's embeddings request, and infinity's `modality`; unknown fields (OpenAI's `user`) are ignored."""
    model_config = ConfigDict(extra='ignore')
    input: Union[StrictStr, List[StrictStr]] = Field(
        description='a text or a list of texts; with modality "image", images as data URIs (or http(s) URLs '
                    'when the server allows them)')
    model: Optional[StrictStr] = Field(None, description='the served model (GET /v1/models); any other is refused')
    encoding_format: Literal['float', 'base64'] = Field(
        'float', description='"base64": each embedding as the base64 of its little-endian float32 bytes')
    modality: Literal['text', 'image'] = 'text'
    templates: StrictBool = Field(False, description="texts as labels through the model's templates, averaged "
                                                     "(Predictor.get_text_latents); default: as they are")
    dimensions: Optional[int] = Field(None, description="must be the model's embedding size when given")


class ClassifyRequest(BaseModel):
    """Zero-shot labels for images, as ruclip.classify."""
    model_config = ConfigDict(extra='forbid')
    model: Optional[StrictStr] = None
    images: List[StrictStr] = Field(description='images as data URIs (or http(s) URLs when allowed)')
    labels: List[StrictStr] = Field(description='the candidate labels, in Russian')
    templates: Optional[List[StrictStr]] = Field(None, description="label templates with {} (default: the model's)")
    k: int = Field(3, ge=1, le=MAX_K, description='labels per image')


class RankRequest(BaseModel):
    """Images x captions, both ways, as ruclip.rank (captions as they are, no templates)."""
    model_config = ConfigDict(extra='forbid')
    model: Optional[StrictStr] = None
    images: List[StrictStr] = Field(description='images as data URIs (or http(s) URLs when allowed)')
    texts: List[StrictStr] = Field(description='the captions')
    k: int = Field(5, ge=1, le=MAX_K, description='results per image and per caption')


def router(served) -> APIRouter:
    """The /v1 routes for `served` (app.Served: the model's towers, name and limits)."""
    routes = APIRouter(prefix='/v1')

    @routes.get('/models')
    async def models():
        return {'object': 'list', 'data': [{'id': served.name, 'object': 'model', 'created': served.created,
                                            'owned_by': 'ruclip', 'embed_dim': served.embed_dim,
                                            'modalities': ['text', 'image']}]}

    @routes.post('/embeddings')
    async def embeddings(body: EmbeddingRequest):
        served.check_model(body.model)
        if body.dimensions is not None and body.dimensions != served.embed_dim:
            raise BadInput(f'dimensions: this model makes {served.embed_dim}-dimensional embeddings, '
                           f'got {body.dimensions}')
        inputs = served.check_inputs([body.input] if isinstance(body.input, str) else body.input, 'input')
        if body.modality == 'image':
            if body.templates:
                raise BadInput('templates apply to texts only, not to modality "image"')
            latents = await served.towers.images(await decode_images(inputs, **served.decode_options))
            tokens = len(inputs)
        else:
            latents = await served.towers.texts(inputs, () if body.templates else None)
            tokens = served.towers.token_count(inputs)
        data = [{'object': 'embedding', 'index': i, 'embedding': _encode(latent, body.encoding_format)}
                for i, latent in enumerate(latents)]
        return json_response({'object': 'list', 'data': data, 'model': served.name,
                              'usage': {'prompt_tokens': tokens, 'total_tokens': tokens}})

    @routes.post('/classify')
    async def classify(body: ClassifyRequest):
        from ..zero_shot import classify

        served.check_model(body.model)
        images = served.check_inputs(body.images, 'images')
        labels = served.check_inputs(body.labels, 'labels')
        templates = () if body.templates is None else tuple(served.check_templates(body.templates))
        image_latents = await served.towers.images(await decode_images(images, **served.decode_options))
        label_latents = await served.towers.texts(labels, templates)
        top = classify(served.towers.predictor, torch.from_numpy(image_latents), labels, body.k,
                       text_latents=torch.from_numpy(label_latents))
        return {'model': served.name, 'data': [
            {'index': i, 'labels': [{'label': entry['label'], 'index': entry['index'], 'probability': entry['score']}
                                    for entry in row]} for i, row in enumerate(top.tolist())]}

    @routes.post('/rank')
    async def rank(body: RankRequest):
        from ..retrieval import rank

        served.check_model(body.model)
        images = served.check_inputs(body.images, 'images')
        texts = served.check_inputs(body.texts, 'texts')
        image_latents = await served.towers.images(await decode_images(images, **served.decode_options))
        text_latents = await served.towers.texts(texts)
        ranking = rank(served.towers.predictor, torch.from_numpy(image_latents), texts, body.k,
                       text_latents=torch.from_numpy(text_latents))
        return {'model': served.name, 'texts_per_image': ranking.texts_per_image.tolist(),
                'images_per_text': ranking.images_per_text.tolist()}

    return routes


def json_response(payload: dict) -> Response:
    """payload as JSON, numpy arrays as lists of numbers (float32 ones in their shortest exact form)."""
    return Response(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), media_type='application/json')


def _encode(latent: np.ndarray, encoding_format: str):
    if encoding_format == 'base64':  # OpenAI's: the float32 array's bytes, little-endian
        return base64.b64encode(latent.astype('<f4').tobytes()).decode('ascii')
    return np.ascontiguousarray(latent, dtype=np.float32)
