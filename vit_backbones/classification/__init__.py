"""Classification pieces mmpretrain lacks for our recipes (``configs/classification``).

:class:`DistillationImageClassifier` and :class:`DeiTDistillationHead` train a distilled DeiT against a frozen
teacher with DeiT's loss; mmpretrain 1.2 only evaluates distilled DeiTs (its ``DeiTClsHead`` warns in training and
its loss ignores the distillation token's purpose).
"""
from .distillation import DeiTDistillationHead, DistillationImageClassifier

__all__ = ['DeiTDistillationHead', 'DistillationImageClassifier']
