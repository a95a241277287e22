"""The RuCLIP network: a ViT image tower and a causal text transformer.

Parameter names and shapes are openai-CLIP's (those of the original ruclip), so the Hub's
pytorch_model.bin loads with strict=True; attention runs through F.scaled_dot_product_attention.
Tensors are batch-first, [B, T, C], throughout, except at Transformer.forward, which keeps the
original's [T, B, C] call.
"""
import os
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._device import resolve_device, resolve_dtype
from ._layout import check_state_dict
from ._weights import assign_state_dict, read_state_dict
from .config import CLIPConfig
# the original's ruclip.model names, re-exported
from .transformer import LayerNorm, QuickGELU, ResidualAttentionBlock, Transformer  # noqa: F401

class VisionTransformer(nn.Module):
    def __init__(self, input_resolution: int, patch_size: int, width: int, layers: int, heads: int,
                 output_dim: int):
        super().__init__()
        self.input_resolution = input_resolution
        self.output_dim = output_dim
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(torch.empty(width))
        self.positional_embedding = nn.Parameter(torch.empty((input_resolution // patch_size) ** 2 + 1, width))
        self.ln_pre = LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = LayerNorm(width)
        self.proj = nn.Parameter(torch.empty(width, output_dim))  # these three: CLIP.initialize_parameters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed_patches(x)  # [B, grid**2, width]
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)  # [B, 1, width]
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)  # [B, grid**2 + 1, width]
        x = self.transformer.forward_batch_first(self.ln_pre(x), first_only=True)  # [B, 1, width]: the class token
        return self.ln_post(x[:, 0, :]) @ self.proj  # [B, output_dim]

    def embed_patches(self, x: torch.Tensor) -> torch.Tensor:
        """conv1 (stride = kernel = patch) as one matmul over the flattened patches.

        Same numbers as the convolution up to summation order; several times faster in bf16 on CPU,
        where oneDNN runs large-kernel convolutions without its matmul units.
        """
        B, C, S, _ = x.shape
        P = self.conv1.kernel_size[0]
        g = S // P
        patches = x.reshape(B, C, g, P, g, P).permute(0, 2, 4, 1, 3, 5)  # [B, grid, grid, 3, P, P]
        patches = patches.reshape(B * g * g, C * P * P)  # [B*grid**2, 3*P*P]
        weight = self.conv1.weight.reshape(self.conv1.out_channels, C * P * P)  # [width, 3*P*P]
        return (patches @ weight.t()).view(B, g * g, -1)  # [B, grid**2, width]


class TwoTowerModel(nn.Module):
    """encode_image, encode_text and forward, with their checks on the inputs, over two towers.

    A subclass gives the towers: visual(pixel_values [B, 3, S, S]) -> [B, embed_dim] image latents and
    text_latents_at(input_ids [B, T], eos_positions [B]) -> [B, embed_dim] text latents, neither
    checking its input; and config, eos_id, context_length, vocab_size, logit_scale, dtype and device.
    CLIP runs the towers in torch; ruclip.backends' models run them on other runtimes, with the same
    checks and the same trim of texts.

    name_or_path: how ruclip.load was asked for the model (a name of ruclip.MODELS or the checkpoint
    folder), None for a model built otherwise; its identity (ruclip.identity) names it so.
    """
    name_or_path = None

    def encode_image(self, pixel_values: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Image latents of processed images.

        Args:
            pixel_values: `[B, 3, S, S]` float tensor, RuCLIPProcessor's `pixel_values` (S: the
                model's image size); moved to the model's device and dtype.
            normalize: L2-normalise the latents, as open_clip's `normalize=True`.

        Returns:
            `[B, embed_dim]` tensor in the model's dtype, on its device.

        Raises:
            TypeError: pixel_values is not a torch.Tensor.
            ValueError: a shape other than `[B, 3, S, S]`, integer values, or no images.
        """
        size = self.config.image_resolution
        if not isinstance(pixel_values, torch.Tensor):
            raise TypeError(f'pixel_values must be a torch.Tensor, got {type(pixel_values).__name__}')
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != (3, size, size):
            raise ValueError(f'pixel_values must have shape [batch, 3, {size}, {size}] for this model, '
                             f'got {list(pixel_values.shape)}')
        if not pixel_values.is_floating_point():
            raise ValueError(f'pixel_values must be floats (images normalised by RuCLIPProcessor), '
                             f'got {pixel_values.dtype}')
        if pixel_values.shape[0] == 0:
            raise ValueError('pixel_values is empty: encode at least one image')
        latents = self.visual(pixel_values.to(device=self.device, dtype=self.dtype))
        return F.normalize(latents, dim=-1) if normalize else latents

    def encode_text(self, input_ids: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Text latents of token ids, read at each row's first eos token.

        Attention is causal and the latent is read at the eos token, so positions after the last eos
        in the batch cannot change the result: they are cut off before the transformer runs.

        Args:
            input_ids: `[B, T]` integer tensor (T at most the context length), each id in
                `[0, vocab_size)` and each row holding an eos token: RuCLIPProcessor's `input_ids`.
            normalize: L2-normalise the latents.

        Returns:
            `[B, embed_dim]` tensor in the model's dtype, on its device.

        Raises:
            TypeError: input_ids is not a torch.Tensor.
            ValueError: not a 2-D integer tensor, no rows, more positions than the context length, an
                id out of range, or a row without an eos token.
        """
        eos_positions = find_eos(input_ids, self.eos_id, self.context_length, self.vocab_size)  # [B]
        length = int(eos_positions.max()) + 1
        input_ids = input_ids[:, :length].to(device=self.device, dtype=torch.long)
        latents = self.text_latents_at(input_ids, eos_positions.to(self.device))
        return F.normalize(latents, dim=-1) if normalize else latents

    def forward(self, input_ids: torch.Tensor, pixel_values: torch.Tensor):
        """Scaled cosine similarities of every image with every text, as the original's forward.

        Args:
            input_ids: `[N_texts, T]` token ids, as encode_text takes them.
            pixel_values: `[N_images, 3, S, S]` processed images, as encode_image takes them.

        Returns:
            tuple[torch.Tensor, torch.Tensor]: `logits_per_image` `[N_images, N_texts]` and
                `logits_per_text` `[N_texts, N_images]`, each `logit_scale.exp() * cosine`.

        Raises:
            TypeError: an input that is not a torch.Tensor.
            ValueError: an input encode_image or encode_text refuses.
        """
        image_latents = self.encode_image(pixel_values, normalize=True)
        text_latents = self.encode_text(input_ids, normalize=True)
        logits_per_image = self.logit_scale.exp() * image_latents @ text_latents.t()
        return logits_per_image, logits_per_image.t()


class CLIP(TwoTowerModel):
    """RuCLIP: the image and text towers, with the original's parameter names and state dict.

    The constructor takes the original's arguments, the keys of config.json; `from_pretrained`
    and `ruclip.load` are the usual ways to get a model with its weights. `encode_image`,
    `encode_text` and `forward` are TwoTowerModel's.

    Args:
        embed_dim (int): the size of the shared latent space.
        image_resolution (int): the side S of the square images the image tower takes.
        vision_layers (int): blocks of the image transformer.
        vision_width (int): width of the image transformer.
        vision_patch_size (int): side of the square patches the image is cut into.
        context_length (int): positions of the text transformer (77 for RuCLIP).
        vocab_size (int): ids of the tokenizer.
        transformer_width (int): width of the text transformer.
        transformer_heads (int): attention heads of the text transformer.
        transformer_layers (int): blocks of the text transformer.
        eos_id (int): the token id the text latent is read at.

    Raises:
        ValueError: sizes that do not make a model (checked by CLIPConfig).
    """

    def __init__(self, embed_dim, image_resolution, vision_layers, vision_width, vision_patch_size,
                 context_length, vocab_size, transformer_width, transformer_heads, transformer_layers,
                 eos_id=3):
        super().__init__()
        self.config = CLIPConfig(
            embed_dim=embed_dim, image_resolution=image_resolution, vision_layers=vision_layers,
            vision_width=vision_width, vision_patch_size=vision_patch_size, context_length=context_length,
            vocab_size=vocab_size, transformer_width=transformer_width, transformer_heads=transformer_heads,
            transformer_layers=transformer_layers)
        self.eos_id = eos_id
        self.context_length = context_length
        self.vocab_size = vocab_size
        self.visual = VisionTransformer(image_resolution, vision_patch_size, vision_width, vision_layers,
                                        self.config.vision_heads, embed_dim)
        self.transformer = Transformer(transformer_width, transformer_layers, transformer_heads, causal=True)
        # empty until initialize_parameters or a checkpoint fills them: on the meta device any arithmetic
        # would load torch's sympy-based meta kernels (~150 MB and ~1 s for every load)
        self.token_embedding = nn.Embedding(vocab_size, transformer_width,
                                            _weight=torch.empty(vocab_size, transformer_width))
        self.positional_embedding = nn.Parameter(torch.empty(context_length, transformer_width))
        self.ln_final = LayerNorm(transformer_width)
        self.text_projection = nn.Parameter(torch.empty(transformer_width, embed_dim))
        self.logit_scale = nn.Parameter(torch.full([], float(np.log(1 / 0.07))))
        if self.text_projection.device.type != 'meta':
            self.initialize_parameters()

    @classmethod
    def from_config(cls, config: CLIPConfig, eos_id: int = 3) -> 'CLIP':
        """An untrained model of a parsed config (its weights random, or empty on the meta device).

        Args:
            config: the checkpoint's CLIPConfig, whose mean and std the model keeps for exports.
            eos_id: the token id the text latent is read at.

        Returns:
            The model, in training mode, as any new nn.Module.
        """
        architecture = {k: v for k, v in config.to_dict().items() if k not in ('mean', 'std')}
        model = cls(**architecture, eos_id=eos_id)
        model.config = config  # with the image mean/std, which only processors and exports read
        return model

    def initialize_parameters(self):
        """Random weights for a model built from scratch (tests, benchmarks); checkpoints replace them.

        openai-CLIP's normal initialisation of the text transformer's blocks, applied here to the
        image tower's blocks as well (openai-CLIP and the original leave those at
        nn.MultiheadAttention's xavier init); out_proj biases keep nn.Linear's uniform init where
        nn.MultiheadAttention zeroes them. So it is close to, not the same as, the original's.
        """
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        for parameter in (self.visual.class_embedding, self.visual.positional_embedding, self.visual.proj):
            nn.init.normal_(parameter, std=self.visual.transformer.width ** -0.5)
        for tower in (self.transformer, self.visual.transformer):
            proj_std = (tower.width ** -0.5) * ((2 * tower.layers) ** -0.5)
            for block in tower.resblocks:
                nn.init.normal_(block.attn.in_proj_weight, std=tower.width ** -0.5)
                nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
                nn.init.normal_(block.mlp.c_fc.weight, std=(2 * tower.width) ** -0.5)
                nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=self.transformer.width ** -0.5)

    @property
    def dtype(self) -> torch.dtype:
        return self.visual.conv1.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.visual.conv1.weight.device

    def text_latents_at(self, input_ids: torch.Tensor, eos_positions: torch.Tensor) -> torch.Tensor:
        """The text tower on ids as given (no checks, no trim), read at the given positions.

        Traceable: the ONNX export runs it with T as a dynamic axis.

        Args:
            input_ids: `[B, T]` long tensor.
            eos_positions: `[B]` long tensor, the position of each row's eos token.

        Returns:
            `[B, embed_dim]` text latents, not normalised.
        """
        T = input_ids.shape[1]
        x = self.token_embedding(input_ids).to(self.dtype)  # [B, T, width]
        x = self.transformer.forward_batch_first(x + self.positional_embedding[:T].to(self.dtype))
        index = eos_positions.view(-1, 1, 1).expand(-1, 1, x.shape[-1])  # [B, 1, width]
        x = x.gather(1, index).squeeze(1)  # [B, width]
        return self.ln_final(x) @ self.text_projection  # [B, embed_dim]

    @classmethod
    def from_pretrained(cls, folder: Union[str, os.PathLike], dtype: Optional[torch.dtype] = None,
                        device: Union[str, torch.device] = 'cpu') -> 'CLIP':
        """Load config.json and the weights (model.safetensors or pytorch_model.bin) from a folder.

        config.json's values, then the weights' names, shapes and dtypes against it, are checked
        before anything is built, and the weights' values (finite) as they are copied. The network is
        built on the meta device and takes the checkpoint's tensors, so no random initialisation runs;
        they are copied (and converted) one tensor at a time from the mapped file, so the model owns
        its memory and the process holds about one copy of the weights.

        Args:
            folder: a checkpoint folder (config.json and model.safetensors or pytorch_model.bin).
            dtype: None or torch.float32 (default), torch.bfloat16 or torch.float16, or one of their
                names ('bf16', 'fp16', ...), or 'auto'. LayerNorm runs in fp32 whatever the weights'
                dtype.
            device: where the weights go.

        Returns:
            The model in eval mode.

        Raises:
            FileNotFoundError: a missing config.json or weights file.
            ValueError: a config, weights names, shapes, dtypes or values that fail their checks, each
                named.
        """
        device = resolve_device(device)
        dtype = resolve_dtype(dtype, device)
        config = CLIPConfig.from_file(os.path.join(folder, 'config.json'))  # its values checked
        state_dict = read_state_dict(folder)
        check_state_dict(state_dict, config)  # names, shapes, dtypes: before anything is built
        with torch.device('meta'):
            model = cls.from_config(config)
        assign_state_dict(model, state_dict, dtype=dtype, device=device)  # and finite values
        return model.eval()


class ImageTower(nn.Module):
    """pixel_values [B, 3, S, S] float32 -> image latents [B, embed_dim] float32, whatever the weights' dtype.

    CLIP's image tower as one traceable function, without encode_image's checks: what the ONNX
    export and the OpenVINO backend convert.
    """

    def __init__(self, clip: CLIP):
        super().__init__()
        self.clip = clip

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.clip.visual(pixel_values.to(self.clip.dtype)).float()


class TextTower(nn.Module):
    """input_ids [B, T] int64, each row holding an eos -> text latents [B, embed_dim] float32.

    CLIP.encode_text as one traceable function, without its checks and its trim to the batch's
    longest text, whose length depends on the data and would be frozen into a graph. Attention is
    causal and the latent is read at the first eos, so any T from the last eos + 1 up to
    context_length gives the same latents; the runtimes trim as CLIP does.
    """

    def __init__(self, clip: CLIP):
        super().__init__()
        self.clip = clip

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        eos_positions = (input_ids == self.clip.eos_id).int().argmax(dim=1)  # [B], first eos of each row
        return self.clip.text_latents_at(input_ids, eos_positions).float()  # [B, embed_dim]


def find_eos(input_ids: torch.Tensor, eos_id: int, context_length: int,
             vocab_size: Optional[int] = None) -> torch.Tensor:
    """[B] position of the first eos of each row, after checking input_ids is what a text tower takes
    (and, given vocab_size, that every id is in [0, vocab_size))."""
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(f'input_ids must be a torch.Tensor, got {type(input_ids).__name__}')
    if input_ids.dim() != 2 or input_ids.dtype.is_floating_point or input_ids.dtype == torch.bool:
        raise ValueError(f'input_ids must be an integer tensor of shape [batch, length], '
                         f'got {input_ids.dtype} of shape {list(input_ids.shape)}')
    if input_ids.shape[0] == 0:
        raise ValueError('input_ids is empty: encode at least one text')
    if input_ids.shape[1] > context_length:
        raise ValueError(f'input_ids has {input_ids.shape[1]} positions, this model takes at most {context_length}')
    if vocab_size is not None:
        as_long = input_ids.long()  # compared in its own dtype, uint8 would wrap vocab_size modulo 256
        outside = (as_long < 0) | (as_long >= vocab_size)
        if bool(outside.any()):
            row, position = (int(i) for i in outside.nonzero()[0])
            raise ValueError(f'input_ids row {row} holds id {int(input_ids[row, position])}, outside this model\'s '
                             f'vocabulary of {vocab_size} ids (0 to {vocab_size - 1}); build input_ids with '
                             f'the RuCLIPProcessor of the same checkpoint')
    is_eos = input_ids == eos_id
    has_eos = is_eos.any(dim=1)
    if not bool(has_eos.all()):
        row = int((~has_eos).nonzero()[0])
        raise ValueError(f'input_ids row {row} has no eos token (id {eos_id}); build input_ids with RuCLIPProcessor')
    return is_eos.int().argmax(dim=1)
