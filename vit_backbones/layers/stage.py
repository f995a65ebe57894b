"""A backbone stage: it owns its blocks and runs them, with activation checkpointing when asked.

References:
    timm ``swin_transformer.py`` (``SwinTransformerStage`` with ``checkpoint_seq``).
"""
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint


class BackboneStage(nn.Module):
    """Base class of every family's stage.

    A stage holds its blocks in ``self.blocks`` and calls each through :meth:`run_block`, which applies
    non-reentrant activation checkpointing (safe under DDP) when ``with_cp`` is set and gradients are on. The
    backbone sets ``with_cp`` on all its stages; a stage never calls back into the backbone.
    """

    def __init__(self) -> None:
        super().__init__()
        self.with_cp = False

    def run_block(self, block: nn.Module, *args: Any) -> Tensor:
        """``block(*args)``, recomputed in the backward pass instead of stored when ``with_cp`` is set."""
        if self.with_cp and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)
