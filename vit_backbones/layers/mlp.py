"""Transformer feed-forward block (two linear layers around an activation).

References:
    Vaswani et al., "Attention Is All You Need", NeurIPS 2017, arXiv:1706.03762.
"""
from typing import Callable, Optional

from torch import Tensor, nn

from .inference import activate


class Mlp(nn.Module):
    """``fc1 -> act -> drop -> fc2 -> drop`` on the last dimension.

    Args:
        in_features: Input channels.
        hidden_features: Hidden channels (default: ``in_features``).
        out_features: Output channels (default: ``in_features``).
        act_layer: Activation constructor.
        drop: Dropout after the activation and after ``fc2``.
    """

    def __init__(self, in_features: int, hidden_features: Optional[int] = None,
                 out_features: Optional[int] = None, act_layer: Callable[[], nn.Module] = nn.GELU,
                 drop: float = 0.0) -> None:
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop2(self.fc2(self.drop1(activate(self.act, self.fc1(x)))))
