"""RuCLIPProcessor: the BPE tokenizer and the image transform behind one call."""
import os
from typing import Iterable, List, Optional, Sequence, Union

import torch

from ._checks import str_list
from .config import OPENAI_MEAN, OPENAI_STD, CLIPConfig
from .image import ImageTransform, open_image
from .tokenizer import BPETokenizer

TOKEN_CACHE_SIZE = 100_000


class RuCLIPProcessor:
    """The BPE tokenizer and the image transform behind one call, as ruclip 0.0.2's processor.

    Args:
        tokenizer_path (str | os.PathLike): the checkpoint's bpe.model.
        image_size: the side S of the square pictures the model takes.
        text_seq_length: the model's context length: token rows are padded to it, longer texts cut.
        mean: the per-channel mean the pixels are normalised with; CLIP's by default.
        std: the per-channel standard deviation; CLIP's by default.

    Raises:
        ValueError: a mean or std that is not three finite numbers (std positive).
        FileNotFoundError: no tokenizer file at tokenizer_path.
    """
    eos_id = 3
    bos_id = 2
    unk_id = 1
    pad_id = 0

    def __init__(self, tokenizer_path, image_size: int = 224, text_seq_length: int = 77,
                 mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None):
        self.tokenizer = BPETokenizer.from_file(tokenizer_path)
        self.image_size = image_size
        self.text_seq_length = text_seq_length
        self.image_transform = ImageTransform(image_size, OPENAI_MEAN if mean is None else mean,
                                              OPENAI_STD if std is None else std)
        self.mean, self.std = self.image_transform.mean, self.image_transform.std
        self._token_cache = {}  # text -> all its ids, whatever text_seq_length; prompts come back often

    @classmethod
    def from_pretrained(cls, folder) -> 'RuCLIPProcessor':
        """The processor of a checkpoint folder (its config.json and bpe.model).

        Args:
            folder (str | os.PathLike): a folder holding config.json and bpe.model.

        Returns:
            The processor, sized as the folder's config says.

        Raises:
            FileNotFoundError: a file is missing.
            ValueError: a config.json that fails its checks.
        """
        config = CLIPConfig.from_file(os.path.join(folder, 'config.json'))
        return cls.from_config(config, os.path.join(folder, 'bpe.model'))

    @classmethod
    def from_config(cls, config: CLIPConfig, tokenizer_path) -> 'RuCLIPProcessor':
        """The processor for a parsed config.

        Args:
            config: the checkpoint's CLIPConfig.
            tokenizer_path (str | os.PathLike): the checkpoint's bpe.model.

        Returns:
            The processor with the config's image size, context length, mean and std.
        """
        return cls(tokenizer_path, image_size=config.image_resolution, text_seq_length=config.context_length,
                   mean=config.mean, std=config.std)

    def tokenize(self, text: str) -> List[int]:
        """Lowercased BPE ids framed as `[bos] + ids + [eos]`, at most text_seq_length of them.

        Args:
            text: one text.

        Returns:
            The ids, a list of int.

        Raises:
            TypeError: text is not a str.
        """
        if not isinstance(text, str):
            raise TypeError(f'text must be a str, got {type(text).__name__}')
        ids = self._token_cache.get(text)
        if ids is None:
            ids = tuple(self.tokenizer.encode(text.lower()))
            if len(self._token_cache) >= TOKEN_CACHE_SIZE:
                self._token_cache.clear()
            self._token_cache[text] = ids
        return [self.bos_id, *ids[:self.text_seq_length - 2], self.eos_id]

    def pad(self, token_lists: Sequence[Sequence[int]], length: Optional[int] = None) -> torch.Tensor:
        """Token rows zero-padded on the right into one tensor.

        Args:
            token_lists: rows of token ids.
            length: text_seq_length by default, as the original pads; a shorter length (at least the
                longest row) gives the same latents with less work, since attention is causal.

        Returns:
            `[len(token_lists), length]` long tensor.

        Raises:
            ValueError: a row longer than length.
        """
        length = self.text_seq_length if length is None else length
        longest = max(map(len, token_lists), default=0)
        if longest > length:
            raise ValueError(f'cannot pad {longest} tokens to length {length}')
        return torch.tensor([[*tokens, *[self.pad_id] * (length - len(tokens))] for tokens in token_lists],
                            dtype=torch.long).view(len(token_lists), length)

    def encode_text(self, text: str) -> torch.Tensor:
        """One text as a model input row.

        Args:
            text: one text.

        Returns:
            `[text_seq_length]` long tensor, zero-padded.

        Raises:
            TypeError: text is not a str.
        """
        return self.prepare_tokens(self.tokenize(text))

    def prepare_tokens(self, tokens: Sequence[int]) -> torch.Tensor:
        """Token ids as a model input row: cut to text_seq_length (keeping the last id, the eos), padded.

        Args:
            tokens: token ids, e.g. tokenize's.

        Returns:
            `[text_seq_length]` long tensor.
        """
        tokens = list(tokens)
        if len(tokens) > self.text_seq_length:
            tokens = tokens[:self.text_seq_length - 1] + tokens[-1:]
        return self.pad([tokens])[0]

    def decode_text(self, encoded) -> str:
        """The text of one row of ids, the special ids left out.

        Args:
            encoded (torch.Tensor | numpy.ndarray | list[int]): one row of ids, `[T]` or `[1, T]`
                (as the original also took).

        Returns:
            The decoded text.

        Raises:
            ValueError: more than one row.
        """
        ids = encoded.tolist() if hasattr(encoded, 'tolist') else list(encoded)
        if ids and isinstance(ids[0], (list, tuple)):
            if len(ids) != 1:
                raise ValueError(f'decode_text decodes one text, got {len(ids)} rows: '
                                 f'[processor.decode_text(row) for row in input_ids]')
            ids = ids[0]
        return self.tokenizer.decode(ids, ignore_ids=[self.eos_id, self.bos_id, self.unk_id, self.pad_id])

    def __call__(self, text: Union[str, Iterable[str], None] = None, images: Optional[Iterable] = None,
                 return_tensors: Optional[str] = 'pt', padding=True, **kwargs) -> dict:
        """Model inputs for texts, images or both.

        Args:
            text: one text or a list of them.
            images: one image or an iterable of them: PIL images of any mode, file paths or encoded
                bytes.
            return_tensors: 'pt' (torch tensors, the only kind) or None.
            padding: accepted for compatibility: texts are always padded to text_seq_length.
            **kwargs: accepted for compatibility and ignored.

        Returns:
            `{'input_ids': [N, text_seq_length] long}` for texts and `{'pixel_values': [N, 3, S, S]
            float}` for images, both when both are given.

        Raises:
            ValueError: return_tensors other than 'pt', no images in `images`, or an image that cannot
                be read (FileNotFoundError for a missing file).
            TypeError: text holding something other than str.
        """
        if return_tensors not in (None, 'pt'):
            raise ValueError(f"return_tensors must be 'pt', got {return_tensors!r}")
        inputs = {}
        if text is not None:
            texts = [text] if isinstance(text, str) else str_list(text, 'text', expected='a str or a list of str')
            inputs['input_ids'] = self.pad([self.tokenize(t) for t in texts])
        if images is not None:
            if isinstance(images, (str, bytes, bytearray, os.PathLike)) or hasattr(images, 'mode'):
                images = [images]
            pixel_values = [self.image_transform(open_image(image)) for image in images]
            if not pixel_values:
                raise ValueError('images is empty: give at least one image')
            inputs['pixel_values'] = torch.stack(pixel_values)
        return inputs
