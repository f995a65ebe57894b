"""The contract every vit_backbones backbone implements, and the machinery that enforces it.

A backbone maps (B, C, H, W) images of any size to a tuple of NCHW feature maps, one per entry of
``out_indices``, and exposes ``out_channels`` / ``out_strides`` for necks and heads. It supports ``frozen_stages``
(frozen at construction, kept frozen by ``train()``), ``norm_eval``, ``with_cp`` (non-reentrant activation
checkpointing inside each stage) and ``init_cfg=dict(type='Pretrained', checkpoint=...)``.

**Adding a family.** A subclass builds its layers in ``__init__`` and declares three things:

* its stem: :meth:`forward_stem` (images -> NHWC tokens) and :meth:`stem_parts` (what ``frozen_stages=0``
  freezes);
* its stages: an ``nn.ModuleList`` of :class:`~vit_backbones.layers.BackboneStage` under the attribute named by
  ``stages_attr`` (each stage maps NHWC -> NHWC and runs its own blocks), and optionally output norms under
  ``out_norms_attr``;
* its checkpoints: ``checkpoint_family``, the name its converter file registered in
  :mod:`vit_backbones.converters.registry`, and :meth:`adapt_state_dict` for shape fixes (resizing tables).

:class:`BaseBackbone` runs the stem and the stages, collects ``out_indices``, applies the output norms, and after
the subclass's ``__init__`` returns it hands ``with_cp`` to the stages, calls :meth:`random_init` and
:meth:`freeze_stages`, so a family cannot forget them. A family that interleaves its own modules between stages
(ViT-Adapter) overrides :meth:`forward_features`, the one loop over stages.

**Loading.** A load-time pre-hook converts any registered layout (timm, official, mmdet/mmseg, ours) to this
backbone's keys, upgrades our own older state dicts by their ``_version``, adapts a stem convolution to another
number of input channels, and fails loudly when a checkpoint does not fit.
"""
import math
from abc import ABCMeta
from typing import Any, ClassVar, Iterable, Optional, Sequence, Union

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..converters.common import CheckpointMismatchError, Converted, adapt_input_conv, backbone_state_dict
from ..converters.registry import OURS, ConversionReport, convert_to_ours
from ..layers import Attention, BackboneStage, channels_last_weights, nhwc_to_nchw

Freezable = Union[nn.Module, nn.Parameter]

# A checkpoint must provide at least this share of a backbone's own keys, or loading fails loudly.
MIN_MATCHED_FRACTION = 0.5


# ---- argument checks --------------------------------------------------------------------------------------
def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """Return ``value`` if it is an int >= ``minimum``, else raise a ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f'{name} must be an integer >= {minimum}, got {value!r}')
    return value


def check_rate(name: str, value: Any) -> float:
    """Return ``value`` if it is a probability in [0, 1), else raise a ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f'{name} must be a number in [0, 1), got {value!r}')
    return float(value)


def check_rates(**rates: Any) -> None:
    """:func:`check_rate` for every keyword (``drop_rate=0.1, drop_path_rate=0.3``)."""
    for name, value in rates.items():
        check_rate(name, value)


def check_heads_divide(widths: Sequence[int], heads: Sequence[int], width_name: str) -> None:
    """Raise a ``ValueError`` naming ``arch['num_heads']`` unless each stage's heads divide its width."""
    for i, (width, h) in enumerate(zip(widths, heads)):
        if width % h:
            raise ValueError(f"arch['num_heads'][{i}] = {h} does not divide {width_name}[{i}] = {width}")


def check_positive(name: str, value: Any) -> float:
    """Return ``value`` if it is a finite number > 0, else raise a ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < math.inf:
        raise ValueError(f'{name} must be a positive number, got {value!r}')
    return value


def check_per_stage(arch: dict, key: str, num_stages: int, minimum: Optional[float] = 1,
                    integer: bool = True) -> tuple:
    """Check ``arch[key]``: one entry per stage, each an int (or number) >= ``minimum``; return it as a tuple."""
    values = arch[key]
    values = tuple(values) if isinstance(values, (list, tuple)) else (values,)
    if len(values) != num_stages:
        raise ValueError(f"arch['{key}'] must have one entry per stage ({num_stages}), got {values!r}")
    for value in values:
        kind_ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not kind_ok or (minimum is not None and value < minimum):
            kind = 'integers' if integer else 'numbers'
            raise ValueError(f"arch['{key}'] entries must be {kind} >= {minimum}, got {values!r}")
    return values


def parse_out_indices(out_indices: Union[int, Sequence[int]], num_stages: int) -> tuple[int, ...]:
    """Normalise ``out_indices`` (negative allowed) to non-negative stage indices, in the order given.

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


def drop_path_rates(drop_path_rate: float, depths: Sequence[int]) -> list[list[float]]:
    """Stochastic-depth rate of every block, rising linearly from 0 to ``drop_path_rate``, grouped by stage."""
    rates = torch.linspace(0, drop_path_rate, sum(depths), device='cpu').tolist()
    bounds = [sum(depths[:i]) for i in range(len(depths) + 1)]
    return [rates[bounds[i]:bounds[i + 1]] for i in range(len(depths))]


class _BuildThenFinish(ABCMeta):
    """Metaclass hook: after the outermost ``__init__`` returns, run the backbone's ``_finish_build``."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        model = super().__call__(*args, **kwargs)
        model._finish_build()
        return model


class BaseBackbone(BaseModule, metaclass=_BuildThenFinish):
    """Shared behaviour of all backbones (see the module docstring for what a family declares).

    Args:
        in_channels: Channels of the input images.
        num_stages: Number of stages the backbone can output.
        out_indices: Stages to output (negative counts from the end).
        frozen_stages: -1 freezes nothing, 0 the stem, k the stem and stages 0..k-1.
        norm_eval: Keep BatchNorm layers in eval mode while training.
        with_cp: Non-reentrant activation checkpointing of every block.
        init_cfg: mmengine init config; ``dict(type='Pretrained', checkpoint=PATH)`` loads weights.
        cls_output: Classification feature appended after the maps, always the last output (what mmpretrain's
            heads read as ``feats[-1]``): None (dense maps only), ``'avg_featmap'`` (the last stage's map
            averaged over space, (B, C)) or, for families with a cls token, ``'cls_token'`` (the final-normed
            cls token, (B, C); a DeiT's ``(cls, distillation)`` pair). The maps are unchanged by it; it needs
            the last stage in ``out_indices``.
    """

    #: Attribute holding the ``nn.ModuleList`` of stages (timm's names: ``'layers'`` for Swin).
    stages_attr: ClassVar[str] = 'stages'
    #: Attribute holding per-stage output norms (``nn.Identity`` where a stage is not output), or None.
    out_norms_attr: ClassVar[Optional[str]] = None
    #: Name of the family's checkpoint layouts in the converter registry.
    checkpoint_family: ClassVar[Optional[str]] = None
    #: State-dict keys of the convolutions that read the image, adapted to ``in_channels`` when a checkpoint has
    #: another number.
    stem_conv_keys: ClassVar[tuple[str, ...]] = ('patch_embed.proj.weight',)
    #: Version of our state-dict layout; bump it with an :meth:`upgrade_state_dict` step when keys change.
    _version: int = 1
    #: ``cls_output`` values the family provides (families with a cls token add ``'cls_token'``).
    cls_outputs: ClassVar[tuple[str, ...]] = ('avg_featmap',)

    def __init__(self, in_channels: int, num_stages: int, out_indices: Union[int, Sequence[int]],
                 frozen_stages: int = -1, norm_eval: bool = False, with_cp: bool = False,
                 init_cfg: Union[dict, list, None] = None, cls_output: Optional[str] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        check_int('in_channels', in_channels)
        check_int('num_stages', num_stages)
        if isinstance(frozen_stages, bool) or not isinstance(frozen_stages, int) \
                or not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages must be an integer in [-1, {num_stages}], got {frozen_stages!r}')
        self.in_channels = in_channels
        self.num_stages = num_stages
        self.out_indices = parse_out_indices(out_indices, num_stages)
        if cls_output is not None:
            if cls_output not in self.cls_outputs:
                raise ValueError(f'cls_output must be None or one of {self.cls_outputs} for {type(self).__name__}, '
                                 f'got {cls_output!r}')
            if num_stages - 1 not in self.out_indices:
                raise ValueError(f'cls_output={cls_output!r} reads the last stage ({num_stages - 1}); add it to '
                                 f'out_indices, got {self.out_indices}')
        self.cls_output = cls_output
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self._with_cp = bool(with_cp)
        self.out_channels: tuple[int, ...] = ()
        self.out_strides: tuple[int, ...] = ()
        self.register_load_state_dict_pre_hook(self._convert_on_load)

    # ---- what a family declares ---------------------------------------------------------------------------
    def forward_stem(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> NHWC tokens (B, H', W', C') for the first stage."""
        raise NotImplementedError

    def stem_parts(self) -> list[Freezable]:
        """Modules and parameters before the first stage (frozen by ``frozen_stages >= 0``)."""
        raise NotImplementedError

    def adapt_state_dict(self, state_dict: dict[str, Any], own: dict[str, Tensor]) -> dict[str, Any]:
        """Shape fixes after conversion (e.g. resizing position tables to ``own``'s shapes); default: none."""
        return state_dict

    def upgrade_state_dict(self, state_dict: dict[str, Any], version: int) -> dict[str, Any]:
        """Convert one of our state dicts saved at ``version`` (< ``_version``) to the current layout."""
        raise CheckpointMismatchError(f'{type(self).__name__} has no upgrade from state-dict version {version} '
                                      f'to {self._version}')

    def random_init(self) -> None:
        """Random initialisation: linear weights truncated normal (std 0.02, zero bias), LayerNorms 1/0,
        convolutions and BatchNorms PyTorch's defaults; families add their specifics (tables, embeddings)."""
        self.apply(_init_linear_and_norm)

    # ---- structure ------------------------------------------------------------------------------------
    def stage_list(self) -> Sequence[BackboneStage]:
        """The built stages, in order."""
        return self._modules.get(self.stages_attr)  # type: ignore[return-value]

    def out_norm(self, index: int) -> Optional[nn.Module]:
        """The norm applied to stage ``index``'s output, or None when the family has none."""
        if self.out_norms_attr is None:
            return None
        return self._modules[self.out_norms_attr][index]  # type: ignore[index]

    def stage_parts(self, index: int) -> list[Freezable]:
        """Modules of stage ``index`` frozen by ``frozen_stages > index``: the stage and its output norm."""
        stages = self.stage_list()
        if index >= len(stages):
            return []
        norm = self.out_norm(index)
        return [stages[index]] if norm is None else [stages[index], norm]

    def block_prefixes(self) -> list[tuple[str, list[str]]]:
        """Per built stage: its parameter-name prefix and the prefixes of its blocks, in order.

        Default: ``('{stages_attr}.{i}.', ['{stages_attr}.{i}.blocks.{j}.', ...])``; a family whose blocks sit
        elsewhere (a plain ViT's ``blocks.{j}``) overrides it.
        """
        return [(f'{self.stages_attr}.{i}.', [f'{self.stages_attr}.{i}.blocks.{j}.' for j in range(len(stage.blocks))])
                for i, stage in enumerate(self.stage_list())]

    def block_modules(self) -> list[nn.Module]:
        """Every built block over all stages, in order (what ``with_cp`` checkpoints one by one)."""
        blocks = []
        for stage_prefix, prefixes in self.block_prefixes():
            blocks += [self.get_submodule(prefix.rstrip('.')) for prefix in prefixes]
        return blocks

    def num_layers(self) -> int:
        """Number of blocks over all built stages (the depth count of layer-wise learning-rate decay)."""
        return sum(len(blocks) for _, blocks in self.block_prefixes())

    def get_layer_depth(self, param_name: str) -> tuple[int, int]:
        """Layer depth of the parameter ``param_name`` (relative to this backbone) for layer-wise lr decay.

        BEiT's convention: the stem (:meth:`stem_parts`: patch embedding, tokens, absolute position embeddings) is
        at depth 0; the k-th block over all stages (k = 0, 1, ...) at depth k + 1; anything else inside a stage
        (downsampling, a stage's token embedding or cls token, stage norms) at the depth of that stage's first
        block; everything else (output norms) at ``num_layers() + 1``.

        Returns:
            ``(depth, num_layers() + 1)``: a parameter's lr scale is ``decay ** (num_layers() + 1 - depth)``.
        """
        top = self.num_layers() + 1
        index = 0
        for stage_prefix, blocks in self.block_prefixes():
            first = index + 1
            for block_prefix in blocks:
                index += 1
                if param_name.startswith(block_prefix):
                    return index, top
            if param_name.startswith(stage_prefix) and not self._in_stem(param_name):
                return first, top
        return (0 if self._in_stem(param_name) else top), top

    def _in_stem(self, param_name: str) -> bool:
        """Whether the parameter ``param_name`` belongs to one of :meth:`stem_parts`."""
        try:
            param = self.get_parameter(param_name)
        except AttributeError:
            raise ValueError(f'{type(self).__name__} has no parameter {param_name!r}') from None
        return any(param is q for part in self.stem_parts()
                   for q in ([part] if isinstance(part, nn.Parameter) else part.parameters()))

    @property
    def with_cp(self) -> bool:
        """Whether blocks run under activation checkpointing; setting it updates every stage."""
        return self._with_cp

    @with_cp.setter
    def with_cp(self, value: bool) -> None:
        self._with_cp = bool(value)
        for stage in self.stage_list():
            stage.with_cp = self._with_cp

    def set_fused_attn(self, enable: Optional[bool]) -> None:
        """Fused SDPA (True), the math path (False) or the package default (None) for every attention here."""
        for module in self.modules():
            if isinstance(module, Attention):
                module.fused_attn = enable

    def _finish_build(self) -> None:
        """Run once after the family's ``__init__``: check the declarations, then init and freeze."""
        stages = self.stage_list()
        if not isinstance(stages, nn.ModuleList) or not all(isinstance(s, BackboneStage) for s in stages):
            raise TypeError(f'{type(self).__name__}.{self.stages_attr} must be an nn.ModuleList of BackboneStage')
        if len(self.out_channels) != len(self.out_indices) or len(self.out_strides) != len(self.out_indices):
            raise TypeError(f'{type(self).__name__} must set out_channels and out_strides, one per out_indices')
        self.with_cp = self._with_cp
        # stages carry NHWC tokens, so their convolutions read channels-last views: weights in the same layout
        # (not those that read the image, NCHW; the contract suite checks every family)
        image_convs = {key.rsplit('.', 1)[0] for key in self.stem_conv_keys}
        channels_last_weights(m for name, m in stages.named_modules(prefix=self.stages_attr)
                              if isinstance(m, nn.Conv2d) and m.groups == 1 and name not in image_convs)
        self.random_init()
        self.freeze_stages()

    # ---- the contract ---------------------------------------------------------------------------------
    def check_input(self, x: Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is a (B, in_channels, H, W) tensor."""
        if not isinstance(x, Tensor) or x.ndim != 4:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f'{type(self).__name__} expects a 4-D (B, C, H, W) tensor, got {shape}')
        if x.shape[1] != self.in_channels:
            raise ValueError(f'{type(self).__name__} expects {self.in_channels} input channels '
                             f'(B, {self.in_channels}, H, W), got {tuple(x.shape)}')

    def forward_features(self, x: Tensor) -> dict[int, Tensor]:
        """Stem, then every stage in turn; returns the NHWC output of each stage in ``out_indices``."""
        x = self.forward_stem(x)
        feats = {}
        for index, stage in enumerate(self.stage_list()):
            x = stage(x)
            if index in self.out_indices:
                feats[index] = x
        return feats

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """Return one (B, C_i, H_i, W_i) map per entry of ``out_indices``, in that order, then the ``cls_output``
        feature if one is asked for."""
        self.check_input(x)
        return self.append_cls_output(self.format_outputs(self.forward_features(x)))

    def append_cls_output(self, outs: tuple[Any, ...], cls_token: Any = None,
                          maps: Optional[Sequence[Tensor]] = None) -> tuple[Any, ...]:
        """``outs`` with the ``cls_output`` feature appended: the last stage's map averaged over space, or
        ``cls_token`` (a (B, C) tensor, or a DeiT's (cls, distillation) pair) given by the family.

        ``maps`` are the NCHW maps of ``out_indices`` in order (default: the first entries of ``outs``)."""
        if self.cls_output is None:
            return outs
        if self.cls_output == 'avg_featmap':
            last = (outs if maps is None else maps)[self.out_indices.index(self.num_stages - 1)]
            return (*outs, last.mean(dim=(2, 3)))  # (B, C, H, W) -> (B, C)
        if cls_token is None:
            raise RuntimeError(f'{type(self).__name__} built with cls_output={self.cls_output!r} gave no cls token')
        return (*outs, cls_token)

    def format_outputs(self, feats: dict[int, Tensor]) -> tuple[Tensor, ...]:
        """Output norms, then NCHW: one (B, C_i, H_i, W_i) map per ``out_indices`` entry from NHWC ``feats``."""
        outs = []
        for index in self.out_indices:
            norm = self.out_norm(index)
            feat = feats[index] if norm is None else norm(feats[index])
            outs.append(nhwc_to_nchw(feat))  # (B, H, W, C) -> (B, C, H, W)
        return tuple(outs)

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
    def convert_state_dict(self, state_dict: dict[str, Any], own: dict[str, Tensor],
                           version: Optional[int] = None) -> Converted:
        """Convert a checkpoint in any registered layout to this backbone's keys and shapes.

        Args:
            state_dict: The backbone's part of a checkpoint.
            own: This backbone's ``state_dict()`` (the target keys and shapes).
            version: ``_version`` the state dict was saved with, if it is one of ours and says so.
        """
        if self.checkpoint_family is None:
            result = Converted(dict(state_dict), OURS, {})
        else:
            result = convert_to_ours(state_dict, self.checkpoint_family)
        sd = result.state_dict
        if result.source == OURS and version is not None and version != self._version:
            if version > self._version:
                raise CheckpointMismatchError(
                    f'the state dict was saved by a newer vit_backbones ({type(self).__name__} layout version '
                    f'{version}; this one reads up to {self._version})')
            sd = self.upgrade_state_dict(sd, version)
        sd = self.adapt_state_dict(sd, own)
        sd = self._adapt_stem(sd, own)
        dropped = dict(result.dropped)
        for key in [k for k in sd if k not in own]:  # parts this configuration does not build: left out, with why
            reason = self.unbuilt_reason(key)
            if reason is not None:
                dropped[key] = reason
                del sd[key]
        return Converted(sd, result.source, dropped)

    def unbuilt_reason(self, key: str) -> Optional[str]:
        """Why a converted checkpoint key absent from this model belongs to a part this configuration does not
        build (a classification head, blocks after the last output), or None (then strict loading reports it)."""
        return None

    def _adapt_stem(self, sd: dict[str, Any], own: dict[str, Tensor]) -> dict[str, Any]:
        """Adapt the image convolutions of a checkpoint with another number of input channels (logged)."""
        sd = dict(sd)
        for key in self.stem_conv_keys:
            if key not in sd or key not in own:
                continue
            weight, target = sd[key], own[key]
            if weight.ndim != 4 or weight.shape == target.shape or \
                    (weight.shape[0], *weight.shape[2:]) != (target.shape[0], *target.shape[2:]):
                continue
            sd[key] = adapt_input_conv(weight, target.shape[1])
            how = 'summed over its input channels' if target.shape[1] == 1 else \
                f'repeated cyclically and scaled by {weight.shape[1]}/{target.shape[1]}'
            print_log(f'{type(self).__name__}: the checkpoint stem {key} has {weight.shape[1]} input channels and '
                      f'this model {target.shape[1]}; its weights were {how}', logger='current')
        return sd

    def own_init_parameters(self) -> list[str]:
        """Parameters whose random init is the family's own, not :meth:`random_init`'s package-wide rule (the
        contract tests exempt them from its distribution checks); default: none."""
        return []

    def _convert_on_load(self, module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict,
                         strict: bool, missing_keys: list, unexpected_keys: list, error_msgs: list) -> None:
        """Load-time pre-hook: convert this backbone's part of ``state_dict`` in place."""
        source = {key[len(prefix):]: state_dict.pop(key) for key in list(state_dict) if key.startswith(prefix)}
        if not prefix:
            source = backbone_state_dict(source)
        expected = self.state_dict()
        result = self.convert_state_dict(source, expected, local_metadata.get('version'))
        report = ConversionReport.compare(result, expected)
        if len(report.mapped) < MIN_MATCHED_FRACTION * len(expected):
            sample = ', '.join(sorted(source)[:8]) or '(none)'
            raise CheckpointMismatchError(
                f'only {len(report.mapped)} of the {len(expected)} keys {type(self).__name__} expects are in the '
                f'state dict with the expected shape (layout read as {result.source!r}); this does not look '
                f'like a checkpoint of this backbone and architecture. Its first keys: {sample}')
        if result.source != OURS or result.dropped or report.unmatched:
            print_log(f'{type(self).__name__}: converted a {result.source} checkpoint; {report.summary()}',
                      logger='current')
        state_dict.update({prefix + key: value for key, value in result.state_dict.items()})


def _init_linear_and_norm(module: nn.Module) -> None:
    """Truncated-normal linear weights (std 0.02) with zero bias; unit/zero norms; PyTorch's default for convs."""
    if isinstance(module, (nn.Conv2d, _BatchNorm)):
        module.reset_parameters()
    elif isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm) and module.elementwise_affine:
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
