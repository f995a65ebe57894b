"""The token convention of vit_backbones and the layout helpers between its three forms.

* **NCHW** ``(B, C, H, W)``: images going in, feature maps coming out of a backbone (what mmdet/mmseg heads read),
  and convolutions inside blocks.
* **NHWC** ``(B, H, W, C)``: what travels between a backbone's stem and its stages and from stage to stage. Linear
  layers and LayerNorms act on the last dimension, and the grid stays visible for windowing and merging.
* **NLC** ``(B, N, C)`` with ``N = H * W`` in row-major order: token sequences inside attention blocks, with the grid
  ``hw = (H, W)`` passed beside them. Prefix tokens (cls, distillation) sit in front: ``(B, P + H * W, C)``.

All helpers take sizes from their input (never fixed numbers), so exported graphs keep dynamic sizes.
"""
from collections.abc import Iterable

import torch
from torch import Tensor, nn


def nhwc_to_nchw(x: Tensor) -> Tensor:
    """(B, H, W, C) -> (B, C, H, W), contiguous for the conv heads that follow."""
    return x.permute(0, 3, 1, 2).contiguous()  # (B, H, W, C) -> (B, C, H, W)


def nchw_to_nhwc(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, H, W, C) as a view."""
    return x.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C)


def nhwc_to_nlc(x: Tensor) -> Tensor:
    """(B, H, W, C) -> (B, H * W, C)."""
    B, H, W, C = x.shape
    return x.reshape(B, H * W, C)  # (B, H, W, C) -> (B, N, C)


def nlc_to_nhwc(x: Tensor, hw: tuple[int, int]) -> Tensor:
    """(B, H * W, C) -> (B, H, W, C) for the grid ``hw``."""
    B, _, C = x.shape
    return x.reshape(B, hw[0], hw[1], C)  # (B, N, C) -> (B, H, W, C)


def nlc_to_nchw(x: Tensor, hw: tuple[int, int]) -> Tensor:
    """(B, H * W, C) -> (B, C, H, W) for the grid ``hw``: a view of contiguous tokens in channels-last memory.

    The view always has the canonical channels-last strides, batch stride included: at batch 1 a transpose-then-
    reshape gives the batch stride C instead, which convolutions do not recognise as channels-last, so they copy
    to NCHW and take the slow NCHW kernel (a PVT v2 depth-wise 3x3 on (1, 512, 56, 56): 23 ms against 1.3 ms on a
    2-core EPYC).
    """
    B, _, C = x.shape
    return x.reshape(B, hw[0], hw[1], C).permute(0, 3, 1, 2)  # (B, N, C) -> (B, H, W, C) -> (B, C, H, W)


def nchw_to_nlc(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, H * W, C)."""
    return x.flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, C, N) -> (B, N, C)


def split_prefix(x: Tensor, num_prefix: int) -> tuple[Tensor, Tensor]:
    """(B, P + N, C) -> prefix tokens (B, P, C) and grid tokens (B, N, C)."""
    return x[:, :num_prefix], x[:, num_prefix:]


def channels_last_weights(convs: Iterable[nn.Conv2d]) -> None:
    """Store the weights of convolutions that read channels-last maps (e.g. from :func:`nlc_to_nchw`) in
    channels-last memory as well; with NCHW weights oneDNN reorders them at every call (PVT v2-b2's spatial
    reductions and patch embeddings: about 3 ms of a 224x224 forward on a 2-core EPYC). Values are unchanged; in-place
    initialisation and ``load_state_dict`` keep the layout.

    Args:
        convs: The convolutions (depth-wise ones need nothing: their (C, 1, k, k) weights are in both layouts).
    """
    for conv in convs:
        conv.weight.data = conv.weight.data.contiguous(memory_format=torch.channels_last)
