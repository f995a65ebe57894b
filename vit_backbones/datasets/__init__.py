"""Dataset helpers: the synthetic Demo Shapes sets used by the CPU demos (segmentation maps, COCO instances).

:mod:`.painting` holds the drawing helpers both generators share; :mod:`.atomic` writes a dataset all-or-nothing.
"""
from .demo_coco import CLASSES as DET_CLASSES
from .demo_coco import DET_PALETTE, generate_demo_coco
from .demo_shapes import CLASSES, PALETTE, generate_demo_shapes, is_complete

__all__ = ['CLASSES', 'DET_CLASSES', 'DET_PALETTE', 'PALETTE', 'generate_demo_coco', 'generate_demo_shapes',
           'is_complete']
