"""Dataset helpers: the synthetic Demo Shapes segmentation set used by the CPU demo."""
from .demo_shapes import CLASSES, PALETTE, generate_demo_shapes, is_complete

__all__ = ['CLASSES', 'PALETTE', 'generate_demo_shapes', 'is_complete']
