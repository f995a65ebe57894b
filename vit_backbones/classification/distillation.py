"""DeiT knowledge distillation through a distillation token, trained with mmpretrain's classifier.

Touvron et al., "Training data-efficient image transformers & distillation through attention", ICML 2021
(arXiv:2012.12877); reference: facebookresearch/deit ``losses.py`` (``DistillationLoss``) and ``main.py``.

A distilled DeiT carries a second token beside the cls token. Its backbone (``VisionTransformer(distilled=True,
cls_output='cls_token')``) returns the final-normed pair ``(cls, dist)``; two linear heads give ``z_cls`` and
``z_dist``. With the student's (possibly Mixup/CutMix-mixed) input ``x``, its targets ``y`` and a frozen teacher's
logits ``z_t`` on the same ``x``, the loss is

    L = (1 - alpha) * L_base(z_cls, y) + alpha * L_distill(z_dist, z_t)

- ``L_base``: the head's classification loss (``loss`` config, e.g. label smoothing) on ``y``, which is a one-hot
  label or, after Mixup/CutMix, the mixed soft target: the same loss as the undistilled recipe.
- hard distillation: ``L_distill = CE(z_dist, argmax z_t)``; DeiT's distilled models use it with alpha = 0.5.
- soft distillation: ``L_distill = tau^2 * KL(softmax(z_t / tau) || softmax(z_dist / tau))``, the KL summed over
  the batch and the classes and divided by ``B * num_classes`` (the reference divides by ``outputs_kd.numel()``).

At inference the two heads are averaged, ``(z_cls + z_dist) / 2`` (mmpretrain's ``DeiTClsHead.forward``).

The teacher (DeiT: RegNetY-16GF, 82.9% top-1) is any mmpretrain classifier config, e.g. ``TimmClassifier`` with
timm's ``regnety_160`` or an ``ImageClassifier`` over mmpretrain's ``RegNet``; it is frozen (no gradients), kept in
eval mode by ``train()``, loaded from ``teacher_checkpoint`` by ``init_weights()`` (which mmengine's Runner calls),
and left out of this model's state dict, so checkpoints hold the student only.
"""
from __future__ import annotations

import re
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F
from mmengine.runner.checkpoint import CheckpointLoader
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.models.heads import DeiTClsHead
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from ..registry import MODELS

DISTILLATION_TYPES = ('hard', 'soft')
TEACHER = 'teacher'


def deit_distillation_loss(dist_logits: Tensor, teacher_logits: Tensor, distillation_type: str = 'hard',
                           tau: float = 1.0) -> Tensor:
    """DeiT's distillation term on the distillation head's logits (B, K) and the teacher's (B, K).

    Args:
        dist_logits: Logits of the distillation token's head.
        teacher_logits: The teacher's logits on the same (mixed) images.
        distillation_type: ``'hard'`` (cross-entropy with the teacher's argmax) or ``'soft'`` (KL at temperature
            ``tau``, scaled by ``tau ** 2`` and divided by ``B * K``, as the reference).
        tau: Softmax temperature of soft distillation.

    Returns:
        The scalar loss, before the ``alpha`` weight.
    """
    if distillation_type == 'hard':
        return F.cross_entropy(dist_logits, teacher_logits.argmax(dim=1))
    if distillation_type == 'soft':
        kl = F.kl_div(F.log_softmax(dist_logits / tau, dim=1), F.log_softmax(teacher_logits / tau, dim=1),
                      reduction='sum', log_target=True)
        return kl * (tau * tau) / dist_logits.numel()
    raise ValueError(f'distillation_type must be one of {DISTILLATION_TYPES}, got {distillation_type!r}')


@MODELS.register_module()
class DeiTDistillationHead(DeiTClsHead):
    """mmpretrain's ``DeiTClsHead`` (``layers.head`` on the cls token, ``layers.head_dist`` on the distillation
    token, their average at inference) with DeiT's training loss.

    Args:
        num_classes: Number of classes.
        in_channels: Channels of each token.
        distillation_type: ``'hard'`` or ``'soft'`` (see the module docstring).
        alpha: Weight of the distillation term; the classification term gets ``1 - alpha``.
        tau: Temperature of soft distillation.
        init_cfg: Initialisation of the two linear heads (DeiT: truncated normal, std 0.02, zero bias).
        **kwargs: ``loss``, ``hidden_dim``, ``act_cfg``, ``topk``, ``cal_acc`` of mmpretrain's head.
    """

    def __init__(self, num_classes: int, in_channels: int, distillation_type: str = 'hard', alpha: float = 0.5,
                 tau: float = 1.0, init_cfg: Union[dict, list, None] = None, **kwargs: Any) -> None:
        if distillation_type not in DISTILLATION_TYPES:
            raise ValueError(f'distillation_type must be one of {DISTILLATION_TYPES}, got {distillation_type!r}')
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
            raise ValueError(f'alpha must be a number in [0, 1], got {alpha!r}')
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or tau <= 0:
            raise ValueError(f'tau must be a positive number, got {tau!r}')
        if init_cfg is None:
            init_cfg = dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.0)
        super().__init__(num_classes=num_classes, in_channels=in_channels, init_cfg=init_cfg, **kwargs)
        self.distillation_type = distillation_type
        self.alpha = float(alpha)
        self.tau = float(tau)

    def forward_both(self, feats: tuple[Any, ...]) -> tuple[Tensor, Tensor]:
        """The two heads' logits, each (B, num_classes): ``(z_cls, z_dist)``."""
        cls_token, dist_token = self.pre_logits(feats)
        return self.layers.head(cls_token), self.layers.head_dist(dist_token)

    def forward(self, feats: tuple[Any, ...]) -> Tensor:
        """Inference logits: the average of the two heads (DeiT's), (B, num_classes)."""
        cls_logits, dist_logits = self.forward_both(feats)
        return (cls_logits + dist_logits) / 2

    def loss(self, feats: tuple[Any, ...], data_samples: list[DataSample],  # type: ignore[override]
             teacher_logits: Optional[Tensor] = None, **kwargs: Any) -> dict[str, Tensor]:
        """DeiT's loss: ``loss_cls`` = (1 - alpha) * base loss of the cls head on the samples' (soft) targets and
        ``loss_distill`` = alpha * distillation loss of the distillation head against ``teacher_logits``."""
        if teacher_logits is None:
            raise ValueError('DeiTDistillationHead.loss needs the teacher_logits of the same images; train it inside '
                             'vit_backbones.DistillationImageClassifier')
        cls_logits, dist_logits = self.forward_both(feats)
        if teacher_logits.shape != dist_logits.shape:
            raise ValueError(f'teacher logits {tuple(teacher_logits.shape)} must match the student logits '
                             f'{tuple(dist_logits.shape)} (same classes)')
        losses = self._get_loss(cls_logits, data_samples, **kwargs)
        losses['loss'] = (1.0 - self.alpha) * losses['loss']
        losses['loss_distill'] = self.alpha * deit_distillation_loss(
            dist_logits, teacher_logits.detach().to(dist_logits.dtype), self.distillation_type, self.tau)
        return losses


def _teacher_state_dict(checkpoint: Any) -> dict[str, Tensor]:
    """The weights in a loaded checkpoint: ``state_dict`` (mmengine), ``model`` (DeiT, timm) or the dict itself,
    with a DistributedDataParallel ``module.`` prefix removed."""
    if not isinstance(checkpoint, dict):
        raise ValueError(f'a teacher checkpoint must hold a dict of tensors, got {type(checkpoint).__name__}')
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    return {re.sub(r'^module\.', '', k): v for k, v in checkpoint.items()}


@MODELS.register_module()
class DistillationImageClassifier(ImageClassifier):
    """mmpretrain's ``ImageClassifier`` that trains its student against a frozen teacher (DeiT distillation).

    Args:
        backbone: The student backbone, e.g. ``dict(type='vit_backbones.VisionTransformer', arch='small',
            distilled=True, cls_output='cls_token', out_indices=-1)``.
        head: A head whose ``loss`` takes ``teacher_logits`` (``vit_backbones.DeiTDistillationHead``).
        teacher: mmpretrain model config of the teacher: a classifier whose ``forward(x, mode='tensor')`` gives
            logits (``TimmClassifier`` with ``model_name='regnety_160'``, or an ``ImageClassifier``).
        teacher_checkpoint: Path or URL of the teacher's weights (an mmengine checkpoint, DeiT's / timm's
            ``{'model': ...}`` or a bare state dict), loaded strictly by :meth:`init_weights`; None keeps the
            teacher as built.
        neck: Optional neck (None with our backbones' ``cls_output``).
        train_cfg: mmpretrain train config (``augments``: Mixup / CutMix, which the teacher sees too).
        data_preprocessor: mmpretrain data preprocessor config.
        init_cfg: Initialisation of the student.
    """

    def __init__(self, backbone: dict, head: dict, teacher: dict, teacher_checkpoint: Optional[str] = None,
                 neck: Optional[dict] = None, train_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None, init_cfg: Union[dict, list, None] = None) -> None:
        super().__init__(backbone=backbone, neck=neck, head=head, train_cfg=train_cfg,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if not isinstance(teacher, dict):
            raise ValueError(f'teacher must be an mmpretrain model config dict, got {type(teacher).__name__}')
        self.teacher = MMPRETRAIN_MODELS.build(teacher)
        self.teacher_checkpoint = teacher_checkpoint
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        self._register_state_dict_hook(self._drop_teacher_keys)
        self.register_load_state_dict_post_hook(self._ignore_missing_teacher_keys)

    # ---- the teacher: frozen, in eval mode, outside the checkpoints ----------------------------------------
    def train(self, mode: bool = True) -> DistillationImageClassifier:
        """Set the student's mode; the teacher stays in eval mode (BatchNorm statistics, no dropout)."""
        super().train(mode)
        self.teacher.eval()
        return self

    def init_weights(self) -> None:
        """Initialise the student, then load the teacher's checkpoint (after any init that reached the teacher)."""
        super().init_weights()
        if self.teacher_checkpoint is not None:
            checkpoint = CheckpointLoader.load_checkpoint(self.teacher_checkpoint, map_location='cpu')
            self.teacher.load_state_dict(_teacher_state_dict(checkpoint), strict=True)
        self.teacher.requires_grad_(False)
        self.teacher.eval()

    @staticmethod
    def _drop_teacher_keys(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
        """State-dict hook: our checkpoints hold the student only (the teacher comes from ``teacher_checkpoint``)."""
        for key in [k for k in state_dict if k.startswith(f'{prefix}{TEACHER}.')]:
            del state_dict[key]

    @staticmethod
    def _ignore_missing_teacher_keys(module: nn.Module, incompatible_keys: Any) -> None:
        """Load post-hook: a student checkpoint (no teacher keys) loads strictly."""
        missing = incompatible_keys.missing_keys
        missing[:] = [k for k in missing if not re.match(rf'^(.*\.)?{TEACHER}\.', k)]

    @torch.no_grad()
    def teacher_logits(self, inputs: Tensor) -> Tensor:
        """The frozen teacher's logits (B, num_classes) on the (already mixed) batch."""
        logits = self.teacher(inputs, mode='tensor')
        if isinstance(logits, (tuple, list)):
            logits = logits[-1]
        return logits.detach()

    def loss(self, inputs: Tensor, data_samples: list[DataSample]) -> dict[str, Tensor]:
        """Student features, teacher logits on the same batch, and the head's distillation loss."""
        feats = self.extract_feat(inputs)
        return self.head.loss(feats, data_samples, teacher_logits=self.teacher_logits(inputs))
