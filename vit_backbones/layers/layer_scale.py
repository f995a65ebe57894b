"""LayerScale: a learned per-channel scale on a residual branch, initialised small.

References:
    Touvron et al., "Going deeper with Image Transformers" (CaiT), ICCV 2021, arXiv:2103.17239;
    timm ``layers/layer_scale.py`` (parameter name ``gamma``, which checkpoints use).
"""
import torch
from torch import Tensor, nn


class LayerScale(nn.Module):
    """``x * gamma`` over the last dimension, ``gamma`` initialised to ``init_value`` everywhere.

    Args:
        dim: Channels (last dimension).
        init_value: Initial value of every entry of ``gamma``.
    """

    def __init__(self, dim: int, init_value: float = 1e-5) -> None:
        super().__init__()
        self.init_value = init_value
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def reset_parameters(self) -> None:
        """Set every entry of ``gamma`` back to ``init_value``."""
        nn.init.constant_(self.gamma, self.init_value)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma

    def extra_repr(self) -> str:
        return f'dim={self.gamma.numel()}, init_value={self.init_value}'
