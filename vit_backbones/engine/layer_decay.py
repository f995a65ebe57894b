"""Layer-wise learning-rate decay for any of our backbones, as an mmengine optimizer-wrapper constructor.

The BEiT recipe (also ViTDet's and ViT-Adapter's): parameters deeper in the backbone keep more of the base learning
rate. A parameter at depth ``d`` of a backbone with ``L`` blocks (:meth:`BaseBackbone.get_layer_depth`: stem 0,
block k at k + 1, output norms L + 1) gets ``lr * decay ** (L + 1 - d)``; everything outside the backbone (necks,
heads) gets the full learning rate. No weight decay on 1-D parameters (norms, biases, layer scales), position
embeddings, cls/distillation tokens and relative-position tables.

Use it from a config::

    optim_wrapper = dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
        constructor='vit_backbones.LayerDecayOptimWrapperConstructor',
        paramwise_cfg=dict(layer_decay_rate=0.7))

References:
    Bao et al., "BEiT: BERT Pre-Training of Image Transformers", ICLR 2022, arXiv:2106.08254.
    Li et al., "Exploring Plain Vision Transformer Backbones for Object Detection" (ViTDet), arXiv:2203.16527.
"""
from typing import Any, Optional

from mmengine.optim import DefaultOptimWrapperConstructor
from torch import nn

from ..backbones.base import BaseBackbone
from ..registry import OPTIM_WRAPPER_CONSTRUCTORS

__all__ = ['LayerDecayOptimWrapperConstructor', 'NO_DECAY_NAMES']

#: Parameter names (last component) that get no weight decay besides every 1-D parameter.
NO_DECAY_NAMES = ('pos_embed', 'absolute_pos_embed', 'cls_token', 'dist_token', 'relative_position_bias_table',
                  'rel_pos_h', 'rel_pos_w')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Builds one parameter group per (layer depth, weight decay or not) with the decayed learning rate.

    Args:
        optim_wrapper_cfg: mmengine's optimizer-wrapper config (``optimizer.lr`` and ``optimizer.weight_decay`` are
            the base values).
        paramwise_cfg: ``dict(layer_decay_rate=r)`` with ``0 < r <= 1``; no other keys.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        paramwise_cfg = dict(paramwise_cfg or {})
        rate = paramwise_cfg.pop('layer_decay_rate', None)
        if paramwise_cfg:
            raise ValueError(f'LayerDecayOptimWrapperConstructor takes paramwise_cfg=dict(layer_decay_rate=...) '
                             f'only, got also {sorted(paramwise_cfg)}')
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
            raise ValueError(f'paramwise_cfg.layer_decay_rate must be a number in (0, 1], got {rate!r}')
        super().__init__(optim_wrapper_cfg, dict(layer_decay_rate=rate))
        self.layer_decay_rate = float(rate)

    def add_params(self, params: list, module: nn.Module, prefix: str = '', **kwargs: Any) -> None:
        """Fill ``params`` with the groups of ``module`` (a model with a ``backbone``, or a backbone)."""
        if isinstance(module, BaseBackbone):
            backbone, backbone_prefix = module, ''
        elif isinstance(getattr(module, 'backbone', None), BaseBackbone):
            backbone, backbone_prefix = module.backbone, 'backbone.'
        else:
            raise TypeError(f'layer-wise lr decay needs one of our backbones, as the model or its .backbone; got '
                            f'{type(module).__name__} with backbone {type(getattr(module, "backbone", None)).__name__}')
        top = backbone.num_layers() + 1
        groups: dict[tuple[int, bool], dict[str, Any]] = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            if backbone_prefix == '' or name.startswith(backbone_prefix):
                depth, _ = backbone.get_layer_depth(name[len(backbone_prefix):])
            else:
                depth = top
            no_decay = param.ndim == 1 or name.rsplit('.', 1)[-1] in NO_DECAY_NAMES
            group = groups.setdefault((depth, no_decay), dict(
                params=[], param_names=[], layer_depth=depth,
                lr=self.base_lr * self.layer_decay_rate ** (top - depth),
                weight_decay=0.0 if no_decay else self.base_wd))
            group['params'].append(param)
            group['param_names'].append(name)
        params.extend(groups[key] for key in sorted(groups))
