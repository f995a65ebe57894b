"""The contract every vit_backbones backbone implements.

A backbone maps (B, C, H, W) images of any size to a tuple of NCHW feature maps, one per entry of
``out_indices``, and exposes ``out_channels`` / ``out_strides`` for the heads. It supports ``frozen_stages``
(frozen at construction, kept frozen by ``train()``), ``norm_eval``, ``with_cp`` (non-reentrant activation
checkpointing) and ``init_cfg=dict(type='Pretrained', checkpoint=...)``. Checkpoints in foreign layouts (timm,
official) are recognised by their keys and converted by a load-time pre-hook, so they also load through
mmengine's ``load_checkpoint`` and ``Runner(load_from=...)``.
"""
from typing import Any, Callable, Iterable, Sequence, Union

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

from ..converters.common import CheckpointMismatchError, Converted, backbone_state_dict

Freezable = Union[nn.Module, nn.Parameter]

# A checkpoint must provide at least this share of a backbone's own keys, or loading fails loudly.
MIN_MATCHED_FRACTION = 0.5


def parse_out_indices(out_indices: Union[int, Sequence[int]], num_stages: int) -> tuple[int, ...]:
    """Normalise ``out_indices`` (negative allowed) to sorted-as-given non-negative stage indices.

    Raises:
        ValueError: an index is out of ``[-num_stages, num_stages)``, repeated, or the list is empty.
    """
    indices = (out_indices,) if isinstance(out_indices, int) else tuple(out_indices)
    if not indices:
        raise ValueError('out_indices must name at least one stage')
    parsed = []
    for index in indices:
        if not isinstance(index, int) or not -num_stages <= index < num_stages:
            raise ValueError(f'out_indices entry {index!r} is invalid: expected integers in '
                             f'[{-num_stages}, {num_stages - 1}] for a backbone with {num_stages} stages')
        parsed.append(index % num_stages)
    if len(set(parsed)) != len(parsed):
        raise ValueError(f'out_indices {indices} name the same stage twice')
    return tuple(parsed)


def resolve_arch(arch: Union[str, dict], archs: dict[str, dict[str, Any]], keys: Sequence[str],
                 optional: Sequence[str] = ()) -> dict:
    """Return a copy of the preset named ``arch``, or validate a custom arch dict.

    A custom dict must hold every key of ``keys`` and may hold those of ``optional``.
    """
    if isinstance(arch, str):
        if arch not in archs:
            raise ValueError(f'unknown arch {arch!r}; expected one of {sorted(archs)} or a dict with {tuple(keys)}')
        return dict(archs[arch])
    if not isinstance(arch, dict) or not set(keys) <= set(arch) <= set(keys) | set(optional):
        raise ValueError(f'a custom arch must be a dict with exactly the keys {tuple(keys)}'
                         f'{f" (optionally {tuple(optional)})" if optional else ""}, got {arch!r}')
    return dict(arch)


class BaseBackbone(BaseModule):
    """Shared behaviour of all backbones; subclasses build their layers and implement the hooks below.

    Args:
        in_channels: Channels of the input images.
        num_stages: Number of stages the backbone can output.
        out_indices: Stages to output (negative counts from the end).
        frozen_stages: -1 freezes nothing, 0 the stem, k the stem and stages 0..k-1.
        norm_eval: Keep BatchNorm layers in eval mode while training.
        with_cp: Use non-reentrant activation checkpointing in the blocks.
        init_cfg: mmengine init config; ``dict(type='Pretrained', checkpoint=PATH)`` loads weights.
    """

    def __init__(self, in_channels: int, num_stages: int, out_indices: Union[int, Sequence[int]],
                 frozen_stages: int = -1, norm_eval: bool = False, with_cp: bool = False,
                 init_cfg: Union[dict, list, None] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages must be in [-1, {num_stages}], got {frozen_stages}')
        self.in_channels = in_channels
        self.num_stages = num_stages
        self.out_indices = parse_out_indices(out_indices, num_stages)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.out_channels: tuple[int, ...] = ()
        self.out_strides: tuple[int, ...] = ()
        self.register_load_state_dict_pre_hook(self._convert_on_load)

    # ---- hooks for subclasses -------------------------------------------------------------------------
    def stem_parts(self) -> list[Freezable]:
        """Modules and parameters before the first stage (frozen by ``frozen_stages >= 0``)."""
        raise NotImplementedError

    def stage_parts(self, index: int) -> list[Freezable]:
        """Modules and parameters of stage ``index``, including its output norm."""
        raise NotImplementedError

    def convert_state_dict(self, state_dict: dict[str, Any], own: dict[str, Tensor]) -> Converted:
        """Convert a checkpoint in any supported layout to this backbone's keys, resizing to ``own``'s shapes."""
        return Converted(state_dict, 'vit_backbones', {})

    def random_init(self) -> None:
        """Random initialisation (truncated normal for linear layers); overridden to add family specifics."""
        self.apply(_init_linear_and_norm)

    # ---- the contract ---------------------------------------------------------------------------------
    def check_input(self, x: Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is a (B, in_channels, H, W) tensor."""
        if not isinstance(x, Tensor) or x.ndim != 4:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f'{type(self).__name__} expects a 4-D (B, C, H, W) tensor, got {shape}')
        if x.shape[1] != self.in_channels:
            raise ValueError(f'{type(self).__name__} expects {self.in_channels} input channels '
                             f'(B, {self.in_channels}, H, W), got {tuple(x.shape)}')

    def run_block(self, block: Callable[..., Tensor], *args: Any) -> Tensor:
        """Call ``block``, through non-reentrant checkpointing when ``with_cp`` is set and grads are on."""
        if self.with_cp and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def freeze_stages(self) -> None:
        """Put the frozen parts in eval mode and stop their gradients."""
        if self.frozen_stages < 0:
            return
        parts = list(self.stem_parts())
        for index in range(self.frozen_stages):
            parts.extend(self.stage_parts(index))
        for part in parts:
            params: Iterable[nn.Parameter] = [part] if isinstance(part, nn.Parameter) else part.parameters()
            if isinstance(part, nn.Module):
                part.eval()
            for param in params:
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'BaseBackbone':
        """Set training mode, keeping frozen stages (and BatchNorms if ``norm_eval``) in eval mode."""
        super().train(mode)
        self.freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def init_weights(self) -> None:
        """Random init, then mmengine's ``init_cfg`` (e.g. Pretrained); loading errors name the file."""
        self.random_init()
        try:
            super().init_weights()
        except CheckpointMismatchError as err:
            cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [self.init_cfg]
            files = [c.get('checkpoint') for c in cfgs if c and c.get('type') == 'Pretrained']
            raise CheckpointMismatchError(f"checkpoint {', '.join(map(str, files))}: {err}") from None

    # ---- loading ----------------------------------------------------------------------------------------
    def _convert_on_load(self, module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict,
                         strict: bool, missing_keys: list, unexpected_keys: list, error_msgs: list) -> None:
        """Load-time pre-hook: convert this backbone's part of ``state_dict`` in place."""
        source = {key[len(prefix):]: state_dict.pop(key) for key in list(state_dict) if key.startswith(prefix)}
        if not prefix:
            source = backbone_state_dict(source)
        expected = self.state_dict()
        result = self.convert_state_dict(source, expected)
        matched = [k for k, v in result.state_dict.items()
                   if k in expected and getattr(v, 'shape', None) == expected[k].shape]
        if len(matched) < MIN_MATCHED_FRACTION * len(expected):
            sample = ', '.join(sorted(source)[:8]) or '(none)'
            raise CheckpointMismatchError(
                f'only {len(matched)} of the {len(expected)} keys {type(self).__name__} expects are in the '
                f'state dict with the expected shape (layout read as {result.source!r}); this does not look '
                f'like a checkpoint of this backbone and architecture. Its first keys: {sample}')
        if result.source != 'vit_backbones' or result.dropped:
            dropped = ', '.join(f'{k} ({why})' for k, why in sorted(result.dropped.items())) or 'none'
            print_log(f'{type(self).__name__}: converted a {result.source} checkpoint '
                      f'({len(matched)}/{len(expected)} keys matched); dropped: {dropped}', logger='current')
        state_dict.update({prefix + key: value for key, value in result.state_dict.items()})


def _init_linear_and_norm(module: nn.Module) -> None:
    """Truncated-normal linear weights with zero bias; unit/zero LayerNorm."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm) and module.elementwise_affine:
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
