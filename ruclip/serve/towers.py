"""The served model: a Predictor behind two batchers (one per tower) and the decoding of image inputs.

The latents are the Predictor's own: texts through get_caption_latents (as they are) or
get_text_latents (labels in templates), images through embed_images, so the API answers what the
library computes.
"""
import asyncio
import base64
import binascii
import io
import re
import urllib.parse
import urllib.request
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .batching import Batcher

DATA_URI = re.compile(r'^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,',
                      re.IGNORECASE)
URL_TIMEOUT = 10.0  # seconds to fetch an image URL (with --allow-urls)


class BadInput(ValueError):
    """An input the client has to fix (answered 400), naming which one and why; `code` says what kind."""

    def __init__(self, message: str, code: str = 'invalid_input'):
        super().__init__(message)
        self.code = code


class Towers:
    """A Predictor's two towers, each behind its own Batcher.

    predictor: a ruclip Predictor (its device, dtype and batch size are used as they are).
    max_batch, max_wait_ms, max_queue, timeout: each batcher's (see batching.Batcher).
    """

    def __init__(self, predictor, *, max_batch: int = 64, max_wait_ms: float = 5.0, max_queue: int = 1024,
                 timeout: Optional[float] = None):
        self.predictor = predictor
        options = dict(max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue, timeout=timeout)
        self.text = Batcher(self._text_latents, name='text', **options)
        self.image = Batcher(self._image_latents, name='image', **options)

    def start(self) -> None:
        self.text.start()
        self.image.start()

    async def stop(self) -> None:
        await self.text.stop()
        await self.image.stop()

    @property
    def running(self) -> bool:
        return self.text.running and self.image.running

    async def texts(self, texts: Sequence[str], templates: Optional[Sequence[str]] = None) -> np.ndarray:
        """[len(texts), dim] float32 unit latents: captions as they are (templates None), or labels in
        `templates` (() for the predictor's own) averaged, as Predictor.get_text_latents."""
        key = None if templates is None else tuple(templates)
        return np.stack(await self.text.submit([(text, key) for text in texts]))

    async def images(self, images: Sequence) -> np.ndarray:
        """[len(images), dim] float32 unit latents of decoded PIL images (decode_image's)."""
        rows = await self.image.submit(list(images))
        for position, row in enumerate(rows):
            if isinstance(row, str):  # decoded, yet the transform failed (a mode PIL cannot convert)
                raise BadInput(f'image {position}: {row}')
        return np.stack(rows)

    def token_count(self, texts: Sequence[str]) -> int:
        """Tokens the texts make (OpenAI's usage.prompt_tokens)."""
        return sum(len(self.predictor.clip_processor.tokenize(text)) for text in texts)

    # ---- the work, in each batcher's thread ---------------------------------------------------------
    def _text_latents(self, items: List[Tuple[str, Optional[tuple]]]) -> List[np.ndarray]:
        """One call of the text tower per kind of text in the batch (captions; labels per templates)."""
        rows: List[Optional[np.ndarray]] = [None] * len(items)
        for key in dict.fromkeys(key for _, key in items):
            positions = [i for i, (_, item_key) in enumerate(items) if item_key == key]
            texts = [items[i][0] for i in positions]
            if key is None:
                latents = self.predictor.get_caption_latents(texts)
            else:
                latents = self.predictor.get_text_latents(texts, templates=list(key) or None)
            for position, latent in zip(positions, latents.float().cpu().numpy()):
                rows[position] = latent
        return rows

    def _image_latents(self, images: list) -> list:
        """The batch's images in one Predictor.embed_images call: a latent per image, or the reason it failed."""
        embedded = self.predictor.embed_images(images, progress=False)
        rows: list = [None] * len(images)
        for position, latent in zip(embedded.kept, embedded.latents.numpy()):
            rows[position] = latent
        for position, _, reason in embedded.failures:
            rows[position] = reason
        return rows


def decode_image(source: str, position: int, *, allow_urls: bool, max_pixels: int, max_bytes: int,
                 draft_size: Optional[int] = None):
    """A PIL image, loaded, from a data URI (base64 or percent-encoded) or, when allow_urls, an http(s)
    URL; BadInput naming `position` for anything else, an undecodable image, or one over max_pixels.
    draft_size: the Predictor's JPEG draft size when it decodes with jpeg_draft, else None.
    Blocking (network, decoding): run it off the event loop."""
    if not isinstance(source, str):
        raise BadInput(f'image {position}: expected a data URI or a URL string, got {type(source).__name__}')
    match = DATA_URI.match(source)
    if match:
        payload = source[match.end():]
        try:
            data = base64.b64decode(payload, validate=True) if match.group('b64') else \
                urllib.parse.unquote_to_bytes(payload)
        except (binascii.Error, ValueError):
            raise BadInput(f'image {position}: the data URI is not valid base64') from None
    elif source.lower().startswith(('http://', 'https://')):
        if not allow_urls:
            raise BadInput(f'image {position}: image URLs are off on this server (start it with --allow-urls); '
                           f'send the image as a data URI (data:image/jpeg;base64,...)')
        data = _fetch(source, position, max_bytes)
    else:
        raise BadInput(f'image {position}: expected a data URI (data:image/jpeg;base64,...)'
                       f'{" or an http(s) URL" if allow_urls else ""}, got {source[:40]!r}')
    return open_limited(data, f'image {position}', max_pixels=max_pixels, draft_size=draft_size)


def open_limited(data: bytes, name: str, *, max_pixels: int, draft_size: Optional[int] = None):
    """A PIL image, loaded, from encoded bytes; BadInput naming `name` for empty or undecodable bytes,
    or an image over max_pixels (read from its header, before decoding)."""
    from PIL import Image

    from ..image import open_image

    if not data:
        raise BadInput(f'{name}: the image is empty (0 bytes)', 'empty_image')
    try:
        with Image.open(io.BytesIO(data)) as header:  # reads the header only: the size, before any decoding
            width, height = header.size
    except Exception:  # noqa: BLE001 - PIL raises many kinds for bytes that are no image
        raise BadInput(f'{name}: cannot read image: not an image file Pillow can read', 'bad_image') from None
    if width * height > max_pixels:
        raise BadInput(f'{name}: {width}x{height} is {width * height} pixels, over the limit of {max_pixels} '
                       f'pixels', 'image_too_large')
    try:
        return open_image(data, draft_size=draft_size)  # as the Predictor decodes bytes
    except ValueError as error:
        raise BadInput(f'{name}: {error}', 'bad_image') from None


def _fetch(url: str, position: int, max_bytes: int) -> bytes:
    request = urllib.request.Request(url, headers={'User-Agent': 'ruclip-serve'})
    try:
        with urllib.request.urlopen(request, timeout=URL_TIMEOUT) as response:
            data = response.read(max_bytes + 1)
    except (OSError, ValueError) as error:  # URLError, HTTPError, timeouts, a malformed URL
        raise BadInput(f'image {position}: cannot fetch {url}: {getattr(error, "reason", None) or error}') from None
    if len(data) > max_bytes:
        raise BadInput(f'image {position}: {url} is larger than {max_bytes} bytes')
    return data


async def decode_images(sources: Sequence[str], **options) -> list:
    """decode_image for each source, in the default thread pool (off the event loop), in input order."""
    loop = asyncio.get_running_loop()
    return await asyncio.gather(*(loop.run_in_executor(None, lambda s=s, i=i: decode_image(s, i, **options))
                                  for i, s in enumerate(sources)))
