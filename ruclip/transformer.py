"""Transformer building blocks with openai-CLIP's parameter names.

Blocks work batch-first, [B, T, C]; Transformer.forward keeps the original's [T, B, C] call for
code written against it, and the towers call its batch-first path, Transformer.forward_batch_first.
"""
import torch
import torch.nn.functional as F
from torch import nn


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
        self.gelu = QuickGELU()  # not called: forward fuses it into the matmuls; kept for the original's module tree
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The original's call: [T, B, width] -> [T, B, width] (sequence first, as nn.MultiheadAttention)."""
        return self.forward_batch_first(x.transpose(0, 1)).transpose(0, 1)

    def forward_batch_first(self, x: torch.Tensor, first_only: bool = False) -> torch.Tensor:
        """[B, T, width] -> [B, T, width]; first_only: [B, 1, width], the first token's output only,
        which is all the image tower reads (the last block then works on that token alone)."""
        if first_only and self.causal:
            raise ValueError('first_only needs bidirectional attention (the image tower)')
        last = len(self.resblocks) - 1
        for i, block in enumerate(self.resblocks):
            x = block(x, self.causal, first_only and i == last)
        return x
