"""An independent, eval-only model of the official CvT, in the official checkpoint layout.

Written for the parity tests from the paper and the official model's documented behaviour: module names as in
``lib/models/cls_cvt.py`` checkpoints, LayerNorm eps 1e-5, QuickGELU (what ``get_cls_model`` passes), q/k/v from
separate depth-wise conv + BatchNorm projections (stride 1 for q, 2 for k/v) followed by linear projections, the
softmax scaled by the stage width ``dim ** -0.5``, a cls token in the last stage that skips the convolutions, a
final norm applied to the cls token. It shares no code with ``vit_backbones``; attention is spelled out per head.
Inputs must be multiples of 4 (where the official conv embedding and ours agree).
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SPECS = {  # experiments/imagenet/cvt/*.yaml: (DIM_EMBED, NUM_HEADS, DEPTH)
    'cvt-13': ((64, 192, 384), (1, 3, 6), (1, 2, 10)),
    'cvt-21': ((64, 192, 384), (1, 3, 6), (1, 4, 16)),
    'cvt-w24': ((192, 768, 1024), (3, 12, 16), (2, 2, 20)),
}


def quick_gelu(x: Tensor) -> Tensor:
    return x * torch.sigmoid(1.702 * x)


class RefConvProj(nn.Module):
    def __init__(self, dim: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, stride, 1, groups=dim, bias=False)
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x)).flatten(2).transpose(1, 2)


class RefAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.conv_proj_q, self.conv_proj_k, self.conv_proj_v = RefConvProj(dim, 1), RefConvProj(dim, 2), \
            RefConvProj(dim, 2)
        self.proj_q, self.proj_k, self.proj_v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, h: int, w: int, cls: bool) -> Tensor:
        B, T, C = x.shape
        prefix, tokens = (x[:, :1], x[:, 1:]) if cls else (x[:, :0], x)
        fmap = tokens.transpose(1, 2).reshape(B, C, h, w)
        q = self.proj_q(torch.cat([prefix, self.conv_proj_q(fmap)], 1))
        k = self.proj_k(torch.cat([prefix, self.conv_proj_k(fmap)], 1))
        v = self.proj_v(torch.cat([prefix, self.conv_proj_v(fmap)], 1))
        d = C // self.heads
        outs = []
        for head in range(self.heads):
            sl = slice(head * d, (head + 1) * d)
            attn = (q[..., sl] @ k[..., sl].transpose(1, 2)) * C ** -0.5  # the full width, as the original
            outs.append(attn.softmax(-1) @ v[..., sl])
        return self.proj(torch.cat(outs, -1))


class RefBlock(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = RefAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = nn.Module()
        self.mlp.fc1, self.mlp.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x: Tensor, h: int, w: int, cls: bool) -> Tensor:
        x = x + self.attn(self.norm1(x), h, w, cls)
        return x + self.mlp.fc2(quick_gelu(self.mlp.fc1(self.norm2(x))))


class RefStage(nn.Module):
    def __init__(self, in_dim: int, dim: int, heads: int, depth: int, kernel: int, stride: int, padding: int,
                 cls: bool) -> None:
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(in_dim, dim, kernel, stride, padding)
        self.patch_embed.norm = nn.LayerNorm(dim, eps=1e-5)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if cls else None
        self.blocks = nn.ModuleList([RefBlock(dim, heads) for _ in range(depth)])

    def forward(self, x: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        x = self.patch_embed.proj(x)
        B, C, h, w = x.shape
        x = self.patch_embed.norm(x.flatten(2).transpose(1, 2))
        cls = self.cls_token is not None
        if cls:
            x = torch.cat([self.cls_token.expand(B, 1, C), x], 1)
        for block in self.blocks:
            x = block(x, h, w, cls)
        token = x[:, :1] if cls else None
        x = x[:, 1:] if cls else x
        return x.transpose(1, 2).reshape(B, C, h, w), token


class RefCvT(nn.Module):
    """``forward`` returns the three stage maps (the last one through the final norm) and the normed cls token."""

    def __init__(self, arch: str = 'cvt-13', num_classes: int = 1000) -> None:
        super().__init__()
        dims, heads, depths = SPECS[arch]
        geometry = [(7, 4, 2), (3, 2, 1), (3, 2, 1)]
        in_dims = (3, *dims[:2])
        for i in range(3):
            setattr(self, f'stage{i}', RefStage(in_dims[i], dims[i], heads[i], depths[i], *geometry[i], cls=i == 2))
        self.norm = nn.LayerNorm(dims[2], eps=1e-5)
        self.head = nn.Linear(dims[2], num_classes)

    def forward(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        feats = []
        for i in range(3):
            x, cls = getattr(self, f'stage{i}')(x)
            feats.append(x)
        last = feats[-1]
        feats[-1] = F.layer_norm(last.flatten(2).transpose(1, 2), last.shape[1:2], self.norm.weight, self.norm.bias,
                                 1e-5).transpose(1, 2).reshape(last.shape)
        return feats, self.norm(cls)[:, 0]
