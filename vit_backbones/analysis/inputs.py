"""What the analysis tools run on: a backbone (from a config or a registered type, with any checkpoint our load
hook reads) and a batch of images (a folder, the demo data, or seeded noise)."""
import os.path as osp
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ['build_backbone', 'load_images', 'DEMO_IMAGES', 'IMAGENET_MEAN', 'IMAGENET_STD']

DEMO_IMAGES = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'data', 'demo_shapes',
                       'img_dir', 'val')
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


def build_backbone(config: Optional[str] = None, checkpoint: Optional[str] = None, type: Optional[str] = None,
                   arch: Optional[Any] = None, **overrides: Any) -> nn.Module:
    """Build a backbone in eval mode and load ``checkpoint`` through its load hook (any layout it reads).

    Args:
        config: An mmseg / mmdet / mmpretrain config; its ``model.backbone`` (or ``model`` itself) is built.
        checkpoint: Our, timm, official or a whole trained mmseg / mmdet model's checkpoint; None: random init.
        type: A registered type (``'vit_backbones.SwinTransformer'`` or ``'SwinTransformer'``) instead of a config.
        arch: The ``arch`` of ``type`` (None: its default).
        **overrides: More constructor arguments.
    """
    from ..registry import MODELS

    if (config is None) == (type is None):
        raise ValueError('give exactly one of a config (--config) or a registered type (--type)')
    if config is not None:
        from mmengine.config import Config
        model_cfg = Config.fromfile(config).get('model')
        if model_cfg is None:
            raise ValueError(f'{config} has no model')
        cfg = dict(model_cfg.get('backbone', model_cfg))
    else:
        cfg = dict(type=type)
        if arch is not None:
            cfg['arch'] = arch
    cfg.update(overrides)
    name = str(cfg.get('type', ''))
    if name.split('.', 1)[-1] not in MODELS.module_dict or ('.' in name and not name.startswith('vit_backbones.')):
        raise ValueError(f"backbone type {name!r} is not registered in vit_backbones "
                         f"(known: {', '.join(sorted(MODELS.module_dict))})")
    cfg['type'] = name.split('.', 1)[-1]
    cfg['init_cfg'] = dict(type='Pretrained', checkpoint=checkpoint) if checkpoint else None
    model = MODELS.build(cfg)
    if checkpoint:
        model.init_weights()
    else:  # random weights, without mmengine's per-parameter init log
        model.random_init()
    return model.eval()


def _image_files(folder: Union[str, Path]) -> list[Path]:
    path = Path(folder)
    if not path.is_dir():
        raise ValueError(f'image folder {folder} does not exist')
    files = sorted(p for p in path.rglob('*') if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f'no images ({", ".join(IMAGE_SUFFIXES)}) under {folder}')
    return files


def load_images(folder: Optional[str] = None, num: int = 8, size: Union[int, tuple[int, int]] = 224,
                seed: int = 0) -> tuple[Tensor, np.ndarray, str]:
    """Up to ``num`` images resized to ``size``: normalised (N, 3, H, W) floats, the (N, H, W, 3) uint8 pictures,
    and where they came from. Without a folder: the demo data if it was made (``tools/make_demo_data.py``),
    otherwise seeded smooth noise."""
    from PIL import Image

    H, W = (size, size) if isinstance(size, int) else size
    if folder is None and osp.isdir(DEMO_IMAGES):
        folder = DEMO_IMAGES
    if folder is not None:
        files = _image_files(folder)[:num]
        pictures = np.stack([np.asarray(Image.open(f).convert('RGB').resize((W, H), Image.BILINEAR)) for f in files])
        source = f'{len(files)} images from {folder}'
    else:
        gen = torch.Generator().manual_seed(seed)
        low = torch.rand(num, 3, max(H // 16, 2), max(W // 16, 2), generator=gen)
        smooth = torch.nn.functional.interpolate(low, size=(H, W), mode='bilinear', align_corners=False)
        pictures = (smooth.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()  # (N, 3, H, W) -> NHWC
        source = f'{num} random images (seed {seed}; no image folder given and no demo data)'
    x = torch.from_numpy(pictures).float().permute(0, 3, 1, 2)  # (N, H, W, 3) -> (N, 3, H, W)
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    return (x - mean) / std, pictures, source
