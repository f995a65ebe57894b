"""Dataset helpers: the synthetic Demo Shapes sets used by the CPU demos (segmentation maps, COCO instances,
one-shape classification).

:mod:`.painting` holds the drawing helpers both generators share; :mod:`.atomic` writes a dataset all-or-nothing.
"""
from .demo_cls import CLASSES as CLS_CLASSES
from .demo_cls import generate_demo_cls
from .demo_coco import CLASSES as DET_CLASSES
from .demo_coco import DET_PALETTE, generate_demo_coco
from .demo_shapes import CLASSES, PALETTE, generate_demo_shapes, is_complete

__all__ = ['CLASSES', 'CLS_CLASSES', 'DET_CLASSES', 'DET_PALETTE', 'PALETTE', 'generate_demo_cls', 'generate_demo_coco',
           'generate_demo_shapes', 'is_complete']
