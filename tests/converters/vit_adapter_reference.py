"""An independent, plain-PyTorch model of the official ViT-Adapter, in the official checkpoint layout.

Written for the parity tests from the paper (arXiv:2205.08534), Deformable DETR's sampling rule
(arXiv:2010.04159) and the official model's documented behaviour, with the official module names
(``sampling_offsets``, ``attention_weights``, ``value_proj``, ``output_proj``, ``spm.stem.{i}``,
``interactions.{i}.{injector,extractor,extra_extractors.{j}}``, ``blocks.{i}.gamma{1,2}``, ``norm{1..4}``).
It shares no code with ``vit_backbones`` or mmcv: deformable sampling is ``F.grid_sample`` level by level, the
spatial prior uses plain BatchNorm2d, the ConvFFN splits its tokens 16:4:1 as the official one does, the ViT is
the official one (no cls token, position embedding with a cls row that is dropped, bicubic resize without
antialias, LayerScale ``gamma1/gamma2`` when asked), attention spelled out per head. Eval-only, inputs whose sides
are multiples of 32.
"""
import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EPS = 1e-6


def official_grid_bias(n_heads: int, n_levels: int, n_points: int) -> Tensor:
    """The official init of ``sampling_offsets.bias``: head h points along angle 2 pi h / heads, point p at p + 1."""
    angles = torch.arange(n_heads, dtype=torch.float32) * (2.0 * math.pi / n_heads)
    directions = torch.stack([angles.cos(), angles.sin()], -1)
    directions = directions / directions.abs().max(-1, keepdim=True)[0]  # on the unit square
    scale = torch.arange(1, n_points + 1, dtype=torch.float32)
    return (directions[:, None, None, :] * scale[None, None, :, None]).expand(n_heads, n_levels, n_points, 2) \
        .reshape(-1)


def sample_levels(value: Tensor, shapes: Sequence[tuple[int, int]], locations: Tensor, weights: Tensor) -> Tensor:
    """Deformable sampling: value (B, S, M, D), locations (B, Q, M, L, P, 2) in [0, 1] as (x, y), weights
    (B, Q, M, L, P) -> (B, Q, M * D)."""
    B, _, M, D = value.shape
    Q, P = locations.shape[1], locations.shape[4]
    out = value.new_zeros(B, M, D, Q)
    start = 0
    for level, (h, w) in enumerate(shapes):
        feat = value[:, start:start + h * w].permute(0, 2, 3, 1).reshape(B * M, D, h, w)
        start += h * w
        grid = locations[:, :, :, level].permute(0, 2, 1, 3, 4).reshape(B * M, Q, P, 2) * 2 - 1
        picked = F.grid_sample(feat, grid, mode='bilinear', padding_mode='zeros', align_corners=False)  # (BM, D, Q, P)
        weight = weights[:, :, :, level].permute(0, 2, 1, 3).reshape(B * M, 1, Q, P)
        out = out + (picked * weight).sum(-1).reshape(B, M, D, Q)
    return out.permute(0, 3, 1, 2).reshape(B, Q, M * D)


class RefMSDeformAttn(nn.Module):
    def __init__(self, d_model: int, n_levels: int, n_heads: int, n_points: int, ratio: float) -> None:
        super().__init__()
        self.n_levels, self.n_heads, self.n_points = n_levels, n_heads, n_points
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, int(d_model * ratio))
        self.output_proj = nn.Linear(int(d_model * ratio), d_model)

    def forward(self, query: Tensor, reference_points: Tensor, input_flatten: Tensor, input_spatial_shapes: Tensor,
                input_level_start_index: Tensor) -> Tensor:
        B, Q, _ = query.shape
        M, L, P = self.n_heads, self.n_levels, self.n_points
        shapes = [tuple(s) for s in input_spatial_shapes.tolist()]
        value = self.value_proj(input_flatten)
        value = value.reshape(B, value.shape[1], M, value.shape[2] // M)
        offsets = self.sampling_offsets(query).reshape(B, Q, M, L, P, 2)
        logits = self.attention_weights(query).reshape(B, Q, M, L * P)
        weights = torch.softmax(logits, dim=-1).reshape(B, Q, M, L, P)
        size_xy = torch.tensor([[w, h] for h, w in shapes], dtype=query.dtype)  # (L, 2)
        ref = reference_points.reshape(reference_points.shape[0], Q, 1, -1, 1, 2)
        locations = ref + offsets / size_xy[:, None, :]
        return self.output_proj(sample_levels(value, shapes, locations, weights))


def ref_reference_points(shapes: Sequence[tuple[int, int]]) -> Tensor:
    rows = []
    for h, w in shapes:
        ys, xs = torch.meshgrid(torch.linspace(0.5, h - 0.5, h), torch.linspace(0.5, w - 0.5, w), indexing='ij')
        rows.append(torch.stack([xs.flatten() / w, ys.flatten() / h], -1))
    return torch.cat(rows)[None, :, None]


def ref_deform_inputs(x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """Official ``deform_inputs``: [reference points, spatial shapes, level start index] for injector, extractor."""
    h, w = x.shape[-2:]
    levels = [(h // 8, w // 8), (h // 16, w // 16), (h // 32, w // 32)]
    vit = [(h // 16, w // 16)]

    def starts(shapes: Tensor) -> Tensor:
        sizes = shapes[:, 0] * shapes[:, 1]
        return torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])

    s1, s2 = torch.tensor(levels), torch.tensor(vit)
    return [ref_reference_points(vit), s1, starts(s1)], [ref_reference_points(levels), s2, starts(s2)]


class RefDWConv(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: Tensor, H: int, W: int) -> Tensor:
        B, N, C = x.shape
        n = N // 21  # 16n tokens at 1/8, 4n at 1/16, n at 1/32
        parts = [(x[:, :16 * n], 2 * H, 2 * W), (x[:, 16 * n:20 * n], H, W), (x[:, 20 * n:], H // 2, W // 2)]
        return torch.cat([self.dwconv(t.transpose(1, 2).reshape(B, C, h, w)).flatten(2).transpose(1, 2)
                          for t, h, w in parts], dim=1)


class RefConvFFN(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.dwconv, self.fc2 = nn.Linear(dim, hidden), RefDWConv(hidden), nn.Linear(hidden, dim)

    def forward(self, x: Tensor, H: int, W: int) -> Tensor:
        return self.fc2(F.gelu(self.dwconv(self.fc1(x), H, W)))


class RefExtractor(nn.Module):
    def __init__(self, dim: int, heads: int, points: int, ratio: float, with_cffn: bool = True,
                 cffn_ratio: float = 0.25) -> None:
        super().__init__()
        self.query_norm, self.feat_norm = nn.LayerNorm(dim, eps=EPS), nn.LayerNorm(dim, eps=EPS)
        self.attn = RefMSDeformAttn(dim, 1, heads, points, ratio)
        self.with_cffn = with_cffn
        if with_cffn:
            self.ffn = RefConvFFN(dim, int(dim * cffn_ratio))
            self.ffn_norm = nn.LayerNorm(dim, eps=EPS)

    def forward(self, query: Tensor, reference_points: Tensor, feat: Tensor, spatial_shapes: Tensor,
                level_start_index: Tensor, H: int, W: int) -> Tensor:
        query = query + self.attn(self.query_norm(query), reference_points, self.feat_norm(feat), spatial_shapes,
                                  level_start_index)
        if self.with_cffn:
            query = query + self.ffn(self.ffn_norm(query), H, W)
        return query


class RefInjector(nn.Module):
    def __init__(self, dim: int, heads: int, points: int, ratio: float) -> None:
        super().__init__()
        self.query_norm, self.feat_norm = nn.LayerNorm(dim, eps=EPS), nn.LayerNorm(dim, eps=EPS)
        self.attn = RefMSDeformAttn(dim, 3, heads, points, ratio)
        self.gamma = nn.Parameter(torch.zeros(dim))

    def forward(self, query: Tensor, reference_points: Tensor, feat: Tensor, spatial_shapes: Tensor,
                level_start_index: Tensor) -> Tensor:
        return query + self.gamma * self.attn(self.query_norm(query), reference_points, self.feat_norm(feat),
                                              spatial_shapes, level_start_index)


class RefInteractionBlock(nn.Module):
    def __init__(self, dim: int, heads: int, points: int, ratio: float, extra_extractor: bool,
                 with_cffn: bool = True, cffn_ratio: float = 0.25) -> None:
        super().__init__()
        self.injector = RefInjector(dim, heads, points, ratio)
        self.extractor = RefExtractor(dim, heads, points, ratio, with_cffn, cffn_ratio)
        self.extra_extractors = nn.Sequential(*[RefExtractor(dim, heads, points, ratio, with_cffn, cffn_ratio)
                                                for _ in range(2)]) if extra_extractor else None

    def forward(self, x: Tensor, c: Tensor, blocks: Sequence[nn.Module], d1: list, d2: list, H: int,
                W: int) -> tuple[Tensor, Tensor]:
        x = self.injector(x, d1[0], c, d1[1], d1[2])
        for blk in blocks:
            x = blk(x, H, W)
        for extractor in [self.extractor, *(self.extra_extractors or [])]:
            c = extractor(c, d2[0], x, d2[1], d2[2], H, W)
        return x, c


class RefSpatialPriorModule(nn.Module):
    def __init__(self, inplanes: int, embed_dim: int) -> None:
        super().__init__()

        def cbr(cin: int, cout: int, stride: int) -> list:
            return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.stem = nn.Sequential(*cbr(3, inplanes, 2), *cbr(inplanes, inplanes, 1), *cbr(inplanes, inplanes, 1),
                                  nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        self.conv2 = nn.Sequential(*cbr(inplanes, 2 * inplanes, 2))
        self.conv3 = nn.Sequential(*cbr(2 * inplanes, 4 * inplanes, 2))
        self.conv4 = nn.Sequential(*cbr(4 * inplanes, 4 * inplanes, 2))
        self.fc1 = nn.Conv2d(inplanes, embed_dim, 1)
        self.fc2 = nn.Conv2d(2 * inplanes, embed_dim, 1)
        self.fc3 = nn.Conv2d(4 * inplanes, embed_dim, 1)
        self.fc4 = nn.Conv2d(4 * inplanes, embed_dim, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        c1 = self.stem(x)
        c2 = self.conv2(c1)
        c3 = self.conv3(c2)
        c4 = self.conv4(c3)
        flat = [fc(c).flatten(2).transpose(1, 2) for fc, c in ((self.fc2, c2), (self.fc3, c3), (self.fc4, c4))]
        return (self.fc1(c1), *flat)


class RefAttention(nn.Module):
    def __init__(self, dim: int, heads: int, window: Optional[int]) -> None:
        super().__init__()
        self.heads, self.window = heads, window
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        d = q.shape[-1] // self.heads
        outs = []
        for head in range(self.heads):
            sl = slice(head * d, (head + 1) * d)
            outs.append(torch.softmax(q[..., sl] @ k[..., sl].transpose(-1, -2) * d ** -0.5, -1) @ v[..., sl])
        return torch.cat(outs, -1)

    def forward(self, x: Tensor, H: int, W: int) -> Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        if not self.window:
            return self.proj(self.attend(q, k, v))
        # the official windowed attention zero-pads q, k, v (after the projection) to whole windows
        B, N, C = x.shape
        ws = self.window
        Hp, Wp = -(-H // ws) * ws, -(-W // ws) * ws

        def windows(t: Tensor) -> Tensor:
            t = F.pad(t.reshape(B, H, W, C), (0, 0, 0, Wp - W, 0, Hp - H))
            t = t.reshape(B, Hp // ws, ws, Wp // ws, ws, C).permute(0, 1, 3, 2, 4, 5)
            return t.reshape(-1, ws * ws, C)

        out = self.attend(windows(q), windows(k), windows(v))
        out = out.reshape(B, Hp // ws, Wp // ws, ws, ws, C).permute(0, 1, 3, 2, 4, 5).reshape(B, Hp, Wp, C)
        return self.proj(out[:, :H, :W].reshape(B, N, C))


class RefBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, layer_scale: bool, window: Optional[int]) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=EPS), nn.LayerNorm(dim, eps=EPS)
        self.attn = RefAttention(dim, heads, window)
        self.mlp = nn.Module()
        self.mlp.fc1, self.mlp.fc2 = nn.Linear(dim, int(dim * mlp_ratio)), nn.Linear(int(dim * mlp_ratio), dim)
        self.layer_scale = layer_scale
        if layer_scale:
            self.gamma1, self.gamma2 = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor, H: int, W: int) -> Tensor:
        a = self.attn(self.norm1(x), H, W)
        x = x + (self.gamma1 * a if self.layer_scale else a)
        m = self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))
        return x + (self.gamma2 * m if self.layer_scale else m)


class RefViTAdapter(nn.Module):
    """``forward`` returns the four official outputs (strides 4, 8, 16, 32), each through its BatchNorm."""

    def __init__(self, embed_dim: int, depth: int, num_heads: int, interaction_indexes: Sequence[Sequence[int]],
                 mlp_ratio: float = 4.0, pretrain_size: int = 224, conv_inplane: int = 64, n_points: int = 4,
                 deform_num_heads: int = 6, deform_ratio: float = 1.0, with_cffn: bool = True,
                 cffn_ratio: float = 0.25, add_vit_feature: bool = True, use_extra_extractor: bool = True,
                 layer_scale: bool = True, window_attn: Optional[Sequence[bool]] = None,
                 window_size: Optional[Sequence[Optional[int]]] = None, segmentation: bool = False) -> None:
        super().__init__()
        self.segmentation = segmentation  # the mmseg copy adds the ViT tokens after each interaction
        self.pretrain_grid = pretrain_size // 16
        self.interaction_indexes = [list(i) for i in interaction_indexes]
        self.add_vit_feature = add_vit_feature
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, embed_dim, 16, 16)
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.pretrain_grid ** 2, embed_dim))
        windows = [ws if on else None for on, ws in zip(window_attn or [False] * depth, window_size or [14] * depth)]
        self.blocks = nn.Sequential(*[RefBlock(embed_dim, num_heads, mlp_ratio, layer_scale, windows[i])
                                      for i in range(depth)])
        self.level_embed = nn.Parameter(torch.zeros(3, embed_dim))
        self.spm = RefSpatialPriorModule(conv_inplane, embed_dim)
        last = len(interaction_indexes) - 1
        self.interactions = nn.Sequential(*[
            RefInteractionBlock(embed_dim, deform_num_heads, n_points, deform_ratio, i == last and use_extra_extractor,
                                with_cffn, cffn_ratio) for i in range(len(interaction_indexes))])
        self.up = nn.ConvTranspose2d(embed_dim, embed_dim, 2, 2)
        for i in range(1, 5):
            setattr(self, f'norm{i}', nn.BatchNorm2d(embed_dim))

    def forward(self, x: Tensor) -> list[Tensor]:
        d1, d2 = ref_deform_inputs(x)
        c1, c2, c3, c4 = self.spm(x)
        c = torch.cat([c2 + self.level_embed[0], c3 + self.level_embed[1], c4 + self.level_embed[2]], dim=1)
        x = self.patch_embed.proj(x)
        bs, dim, H, W = x.shape
        x = x.flatten(2).transpose(1, 2)
        g = self.pretrain_grid
        pos = self.pos_embed[:, 1:].reshape(1, g, g, dim).permute(0, 3, 1, 2)
        pos = F.interpolate(pos, size=(H, W), mode='bicubic', align_corners=False)
        x = x + pos.flatten(2).transpose(1, 2)
        outs = []
        for layer, indexes in zip(self.interactions, self.interaction_indexes):
            x, c = layer(x, c, self.blocks[indexes[0]:indexes[-1] + 1], d1, d2, H, W)
            outs.append(x.transpose(1, 2).reshape(bs, dim, H, W))
        n2, n3 = c2.shape[1], c3.shape[1]
        c2 = c[:, :n2].transpose(1, 2).reshape(bs, dim, 2 * H, 2 * W)
        c3 = c[:, n2:n2 + n3].transpose(1, 2).reshape(bs, dim, H, W)
        c4 = c[:, n2 + n3:].transpose(1, 2).reshape(bs, dim, H // 2, W // 2)
        c1 = self.up(c2) + c1
        if self.add_vit_feature:
            x1, x2, x3, x4 = outs if self.segmentation else [outs[-1]] * 4
            c1 = c1 + F.interpolate(x1, scale_factor=4, mode='bilinear', align_corners=False)
            c2 = c2 + F.interpolate(x2, scale_factor=2, mode='bilinear', align_corners=False)
            c3 = c3 + x3
            c4 = c4 + F.interpolate(x4, scale_factor=0.5, mode='bilinear', align_corners=False)
        return [self.norm1(c1), self.norm2(c2), self.norm3(c3), self.norm4(c4)]


def liven(model: nn.Module, offset_gain: float = 50.0) -> nn.Module:
    """After ``randomise``: query-dependent sampling offsets (``offset_gain`` scales their weights) around the
    official ring of 1-4 pixels (some points fall outside the maps), peaked attention weights, deformable outputs of
    order one, injector gammas around 0.5 and ViT LayerScale around 1 (the official init), so that every part of the
    model shows in the outputs."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, RefMSDeformAttn):
                module.sampling_offsets.weight.mul_(offset_gain)
                module.sampling_offsets.bias.add_(official_grid_bias(module.n_heads, module.n_levels,
                                                                     module.n_points))
                module.attention_weights.weight.mul_(50)
                module.value_proj.weight.mul_(10)
                module.output_proj.weight.mul_(10)
            elif isinstance(module, RefInjector):
                module.gamma.add_(0.5)
            elif isinstance(module, RefBlock) and module.layer_scale:
                module.gamma1.add_(1.0)
                module.gamma2.add_(1.0)
    return model
