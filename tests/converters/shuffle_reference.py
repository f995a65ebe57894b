"""An independent, eval-only model of the official Shuffle Transformer, in the official checkpoint layout.

Written for the parity tests from the paper and the official model's documented behaviour (module names, NCHW
convolutions, BatchNorm2d eps 1e-5, ReLU6, q/k/v 1x1 conv without bias, relative-position bias, neighbour-window
depth-wise conv between attention and MLP, patch merging ``BN -> conv2x2/2``). It shares no code with
``vit_backbones`` and is deliberately plain: loops over window indices instead of reshapes, so that a layout error
in the package's vectorised shuffle cannot hide behind the same error here. Inputs must be divisible by the
window at every stage, as for the original.
"""
import torch
from torch import Tensor, nn


class RefAttention(nn.Module):
    def __init__(self, dim: int, heads: int, ws: int, shuffle: bool) -> None:
        super().__init__()
        self.heads, self.ws, self.shuffle = heads, ws, shuffle
        self.to_qkv = nn.Conv2d(dim, 3 * dim, 1, bias=False)
        self.proj = nn.Conv2d(dim, dim, 1)
        self.relative_position_bias_table = nn.Parameter(torch.randn((2 * ws - 1) ** 2, heads) * 0.02)
        idx = torch.empty(ws * ws, ws * ws, dtype=torch.long)
        for a in range(ws * ws):
            for b in range(ws * ws):
                dy, dx = a // ws - b // ws + ws - 1, a % ws - b % ws + ws - 1
                idx[a, b] = dy * (2 * ws - 1) + dx
        self.register_buffer('relative_position_index', idx)  # persistent, as in the official checkpoints

    def window_coords(self, i: int, j: int, nh: int, nw: int) -> list[tuple[int, int]]:
        """Pixel (row, col) of every token of window (i, j), in token order."""
        ws = self.ws
        if self.shuffle:  # tokens nh rows / nw columns apart
            return [(a * nh + i, b * nw + j) for a in range(ws) for b in range(ws)]
        return [(i * ws + a, j * ws + b) for a in range(ws) for b in range(ws)]

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        ws, h = self.ws, self.heads
        d = C // h
        qkv = self.to_qkv(x)
        out = torch.zeros_like(x)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(ws * ws, ws * ws, h).permute(2, 0, 1)
        nh, nw = H // ws, W // ws
        for i in range(nh):
            for j in range(nw):
                coords = self.window_coords(i, j, nh, nw)
                rows = torch.tensor([r for r, _ in coords])
                cols = torch.tensor([c for _, c in coords])
                tokens = qkv[:, :, rows, cols]  # (B, 3C, N)
                q, k, v = (tokens[:, n * C:(n + 1) * C].reshape(B, h, d, -1).transpose(2, 3) for n in range(3))
                attn = (q @ k.transpose(2, 3)) * d ** -0.5 + bias
                y = attn.softmax(-1) @ v  # (B, h, N, d)
                out[:, :, rows, cols] = y.transpose(2, 3).reshape(B, C, -1)
        return self.proj(out)


class RefMlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.ReLU6()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class RefBlock(nn.Module):
    def __init__(self, dim: int, heads: int, ws: int, shuffle: bool) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = RefAttention(dim, heads, ws, shuffle)
        self.local = nn.Conv2d(dim, dim, ws, 1, ws // 2, groups=dim, bias=True)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = RefMlp(dim, 4 * dim)
        self.norm3 = nn.BatchNorm2d(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        x = x + self.local(self.norm2(x))
        return x + self.mlp(self.norm3(x))


class RefMerge(nn.Module):
    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(dim)
        self.reduction = nn.Conv2d(dim, out_dim, 2, 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.reduction(self.norm(x))


class RefStage(nn.Module):
    def __init__(self, depth: int, dim: int, out_dim: int, heads: int, ws: int) -> None:
        super().__init__()
        self.patch_partition = RefMerge(dim, out_dim) if dim != out_dim else None
        self.layers = nn.ModuleList([
            nn.ModuleList([RefBlock(out_dim, heads, ws, False), RefBlock(out_dim, heads, ws, True)])
            for _ in range(depth // 2)])

    def forward(self, x: Tensor) -> Tensor:
        if self.patch_partition is not None:
            x = self.patch_partition(x)
        for pair in self.layers:
            for block in pair:
                x = block(x)
        return x


class RefShuffleTransformer(nn.Module):
    """Stage outputs of the official model (``forward`` returns the four NCHW maps)."""

    def __init__(self, embed_dim: int = 96, depths=(2, 2, 6, 2), heads=(3, 6, 12, 24), ws: int = 7,
                 token_dim: int = 32, num_classes: int = 1000) -> None:
        super().__init__()
        self.to_token = nn.Module()
        self.to_token.conv1 = nn.Sequential(nn.Conv2d(3, token_dim, 3, 2, 1), nn.BatchNorm2d(token_dim), nn.ReLU6())
        self.to_token.conv2 = nn.Sequential(nn.Conv2d(token_dim, embed_dim, 3, 2, 1), nn.BatchNorm2d(embed_dim),
                                            nn.ReLU6())
        self.to_token.conv3 = nn.Conv2d(embed_dim, embed_dim, 1)
        dims = [embed_dim] + [32 * h for h in heads]
        for s in range(4):
            setattr(self, f'stage{s + 1}', RefStage(depths[s], dims[s], dims[s + 1], heads[s], ws))
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.to_token.conv3(self.to_token.conv2(self.to_token.conv1(x)))
        feats = []
        for s in range(4):
            x = getattr(self, f'stage{s + 1}')(x)
            feats.append(x)
        return feats
