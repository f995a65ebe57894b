"""Map the plain names that configs hold (``norm='ln'``, ``act='gelu'``) to layer constructors."""
from functools import partial
from typing import Callable

import torch
from torch import Tensor, nn


class QuickGELU(nn.Module):
    """``x * sigmoid(1.702 x)``: the sigmoid approximation of GELU that CLIP and the official CvT use."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


_NORMS: dict[str, Callable[[int], nn.Module]] = {
    'ln': partial(nn.LayerNorm, eps=1e-5),
    'ln_eps6': partial(nn.LayerNorm, eps=1e-6),
}
_ACTS: dict[str, Callable[[], nn.Module]] = {
    'gelu': nn.GELU,
    'quick_gelu': QuickGELU,
    'relu': nn.ReLU,
    'relu6': nn.ReLU6,
    'silu': nn.SiLU,
}


def get_norm_layer(name: str) -> Callable[[int], nn.Module]:
    """Return the constructor of a channel-last norm layer by name (``'ln'``, ``'ln_eps6'``)."""
    if name not in _NORMS:
        raise ValueError(f'unknown norm {name!r}; expected one of {sorted(_NORMS)}')
    return _NORMS[name]


def get_act_layer(name: str) -> Callable[[], nn.Module]:
    """Return the constructor of an activation by name (``'gelu'``, ``'quick_gelu'``, ``'relu'``, ``'relu6'``,
    ``'silu'``)."""
    if name not in _ACTS:
        raise ValueError(f'unknown activation {name!r}; expected one of {sorted(_ACTS)}')
    return _ACTS[name]
