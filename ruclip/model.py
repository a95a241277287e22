"""The RuCLIP network: a ViT image tower and a causal text transformer.

Parameter names and shapes are openai-CLIP's (those of the original ruclip), so the Hub's
pytorch_model.bin loads with strict=True; attention runs through F.scaled_dot_product_attention.
Tensors are batch-first, [B, T, C], throughout.
"""
import os
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import assign_state_dict, read_state_dict
from .config import CLIPConfig

DTYPES = {
    'float32': torch.float32, 'fp32': torch.float32,
    'bfloat16': torch.bfloat16, 'bf16': torch.bfloat16,
    'float16': torch.float16, 'fp16': torch.float16, 'half': torch.float16,
}


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in fp32 whatever the input's dtype, as the original does for fp16.

    In eager mode a reduced-precision input goes straight into one kernel with fp32 weight and bias
    (statistics and affine step in fp32, rounded once): no fp32 copy of the activations. Traced for
    torch.compile or export, it takes the one-dtype form, which ONNX and inductor expect.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.weight.float(), self.bias.float()
        if x.dtype == torch.float32 or _is_compiling():
            return F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps).to(x.dtype)
        return F.layer_norm(x, self.normalized_shape, weight, bias, self.eps)


def _is_compiling() -> bool:
    is_compiling = getattr(torch.compiler, 'is_compiling', None)  # torch >= 2.3
    return bool(is_compiling and is_compiling())


QUICK_GELU_SCALE = 1.702


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(QUICK_GELU_SCALE * x)


class MLP(nn.Module):
    """c_proj(QuickGELU(c_fc(x))), with the names of the original's nn.Sequential.

    QuickGELU(h) = h * sigmoid(1.702 h) = silu(1.702 h) / 1.702: the two scalings ride on the
    matmuls (addmm's alpha and beta), leaving one elementwise pass over the widest activation
    instead of the three of the literal formula.
    """

    def __init__(self, width: int):
        super().__init__()
        self.c_fc = nn.Linear(width, width * 4)
        self.gelu = QuickGELU()
        self.c_proj = nn.Linear(width * 4, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])  # [N, width]
        h = torch.addmm(self.c_fc.bias, x, self.c_fc.weight.t(),
                        beta=QUICK_GELU_SCALE, alpha=QUICK_GELU_SCALE)  # [N, 4 * width] = 1.702 c_fc(x)
        h = F.silu(h, inplace=True)  # 1.702 QuickGELU(c_fc(x))
        x = torch.addmm(self.c_proj.bias, h, self.c_proj.weight.t(), alpha=1 / QUICK_GELU_SCALE)  # [N, width]
        return x.view(shape)


class Attention(nn.Module):
    """Multi-head self-attention with nn.MultiheadAttention's parameter names."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, causal: bool, first_only: bool = False) -> torch.Tensor:
        """[B, T, C] -> [B, T, C]; with first_only, [B, 1, C]: the first token's output alone
        (its query against every key), the rest of the work skipped."""
        B, T, C = x.shape
        H, D = self.heads, C // self.heads
        if first_only:
            q = F.linear(x[:, :1], self.in_proj_weight[:C], self.in_proj_bias[:C])  # [B, 1, C]
            kv = F.linear(x, self.in_proj_weight[C:], self.in_proj_bias[C:])  # [B, T, 2C]
            q = q.view(B, 1, H, D).transpose(1, 2)  # [B, H, 1, D]
            k, v = kv.view(B, T, 2, H, D).permute(2, 0, 3, 1, 4)  # 2 x [B, H, T, D]
            T = 1
        else:
            qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # [B, T, 3C]
            q, k, v = qkv.view(B, T, 3, H, D).permute(2, 0, 3, 1, 4)  # 3 x [B, H, T, D]
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal and not first_only)  # [B, H, T, D]
        return self.out_proj(y.transpose(1, 2).reshape(B, T, C))


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = Attention(width, heads)
        self.ln_1 = LayerNorm(width)
        self.mlp = MLP(width)
        self.ln_2 = LayerNorm(width)

    def forward(self, x: torch.Tensor, causal: bool, first_only: bool = False) -> torch.Tensor:
        y = self.attn(self.ln_1(x), causal, first_only)
        x = (x[:, :1] if first_only else x) + y
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, causal: bool = False):
        super().__init__()
        self.width = width
        self.layers = layers
        self.causal = causal
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads) for _ in range(layers)])

    def forward(self, x: torch.Tensor, first_only: bool = False) -> torch.Tensor:
        """[B, T, width] -> [B, T, width]; first_only: [B, 1, width], the first token's output only,
        which is all the image tower reads (the last block then works on that token alone)."""
        if first_only and self.causal:
            raise ValueError('first_only needs bidirectional attention (the image tower)')
        last = len(self.resblocks) - 1
        for i, block in enumerate(self.resblocks):
            x = block(x, self.causal, first_only and i == last)
        return x


class VisionTransformer(nn.Module):
    def __init__(self, input_resolution: int, patch_size: int, width: int, layers: int, heads: int,
                 output_dim: int):
        super().__init__()
        self.input_resolution = input_resolution
        self.output_dim = output_dim
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        scale = width ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn((input_resolution // patch_size) ** 2 + 1, width))
        self.ln_pre = LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed_patches(x)  # [B, grid**2, width]
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)  # [B, 1, width]
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)  # [B, grid**2 + 1, width]
        x = self.transformer(self.ln_pre(x), first_only=True)  # [B, 1, width]: the class token
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


class CLIP(nn.Module):
    """RuCLIP. The constructor takes the original's arguments (the keys of config.json)."""

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
        self.token_embedding = nn.Embedding(vocab_size, transformer_width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, transformer_width))
        self.ln_final = LayerNorm(transformer_width)
        self.text_projection = nn.Parameter(torch.empty(transformer_width, embed_dim))
        self.logit_scale = nn.Parameter(torch.ones([]) * np.log(1 / 0.07))
        if self.text_projection.device.type != 'meta':
            self.initialize_parameters()

    @classmethod
    def from_config(cls, config: CLIPConfig, eos_id: int = 3) -> 'CLIP':
        kwargs = config.to_dict()
        kwargs.pop('mean', None)
        kwargs.pop('std', None)
        return cls(**kwargs, eos_id=eos_id)

    def initialize_parameters(self):
        """openai-CLIP's initialisation; used only for models built from scratch (tests, benchmarks)."""
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
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

    def encode_image(self, pixel_values: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """[B, 3, S, S] processed images -> [B, embed_dim] image latents."""
        size = self.config.image_resolution
        if not isinstance(pixel_values, torch.Tensor):
            raise TypeError(f'pixel_values must be a torch.Tensor, got {type(pixel_values).__name__}')
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != (3, size, size):
            raise ValueError(f'pixel_values must have shape [batch, 3, {size}, {size}] for this model, '
                             f'got {list(pixel_values.shape)}')
        latents = self.visual(pixel_values.to(device=self.device, dtype=self.dtype))
        return F.normalize(latents, dim=-1) if normalize else latents

    def encode_text(self, input_ids: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """[B, T] token ids, each row holding an eos token -> [B, embed_dim] text latents.

        Attention is causal and the latent is read at the eos token, so positions after the last
        eos in the batch cannot change the result: they are cut off before the transformer runs.
        """
        eos_positions = self._eos_positions(input_ids)  # [B]
        length = int(eos_positions.max()) + 1
        input_ids = input_ids[:, :length].to(self.device)
        x = self.token_embedding(input_ids).to(self.dtype)  # [B, T, width]
        x = x + self.positional_embedding[:length].to(self.dtype)
        x = self.transformer(x)
        x = x[torch.arange(x.shape[0], device=x.device), eos_positions.to(x.device)]  # [B, width]
        latents = self.ln_final(x) @ self.text_projection  # [B, embed_dim]
        return F.normalize(latents, dim=-1) if normalize else latents

    def _eos_positions(self, input_ids: torch.Tensor) -> torch.Tensor:
        if not isinstance(input_ids, torch.Tensor):
            raise TypeError(f'input_ids must be a torch.Tensor, got {type(input_ids).__name__}')
        if input_ids.dim() != 2 or input_ids.dtype.is_floating_point or input_ids.dtype == torch.bool:
            raise ValueError(f'input_ids must be an integer tensor of shape [batch, length], '
                             f'got {input_ids.dtype} of shape {list(input_ids.shape)}')
        if input_ids.shape[0] == 0:
            raise ValueError('input_ids is empty: encode at least one text')
        if input_ids.shape[1] > self.context_length:
            raise ValueError(f'input_ids has {input_ids.shape[1]} positions, this model takes at most '
                             f'{self.context_length}')
        is_eos = input_ids == self.eos_id
        has_eos = is_eos.any(dim=1)
        if not bool(has_eos.all()):
            row = int((~has_eos).nonzero()[0])
            raise ValueError(f'input_ids row {row} has no eos token (id {self.eos_id}); '
                             f'build input_ids with RuCLIPProcessor')
        return is_eos.int().argmax(dim=1)  # first eos of each row

    def forward(self, input_ids: torch.Tensor, pixel_values: torch.Tensor):
        image_latents = self.encode_image(pixel_values, normalize=True)
        text_latents = self.encode_text(input_ids, normalize=True)
        logits_per_image = self.logit_scale.exp() * image_latents @ text_latents.t()
        return logits_per_image, logits_per_image.t()

    @classmethod
    def from_pretrained(cls, folder: Union[str, os.PathLike], dtype: Optional[torch.dtype] = None,
                        device: Union[str, torch.device] = 'cpu') -> 'CLIP':
        """Load config.json and the weights (model.safetensors or pytorch_model.bin) from a folder.

        The network is built on the meta device and takes the checkpoint's tensors as they are, so
        no random initialisation runs and no second copy of the weights is made.
        dtype: None or torch.float32 (default), torch.bfloat16 or torch.float16, or one of their
            names ('bf16', 'fp16', ...). LayerNorm runs in fp32 whatever the weights' dtype.
        """
        dtype = resolve_dtype(dtype)
        config = CLIPConfig.from_file(os.path.join(folder, 'config.json'))
        with torch.device('meta'):
            model = cls.from_config(config)
        assign_state_dict(model, read_state_dict(folder))
        return model.to(device=device, dtype=dtype).eval()


def resolve_dtype(dtype) -> torch.dtype:
    """None -> torch.float32; a floating torch.dtype or its name -> that dtype."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str) and dtype.lower().removeprefix('torch.') in DTYPES:
        return DTYPES[dtype.lower().removeprefix('torch.')]
    if dtype in (torch.float32, torch.bfloat16, torch.float16):
        return dtype
    raise ValueError(f'Unknown dtype {dtype!r}; choose one of torch.float32, torch.bfloat16, torch.float16 '
                     f'or their names {sorted(DTYPES)}')
