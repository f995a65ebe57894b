"""Tiny mmengine-only model, dataset and metric for fast runner tests.

Registered into mmengine's root registries, so a config with
``default_scope='mmengine'`` and ``custom_imports`` naming this module can
train, checkpoint and resume in a second, with no mmseg/mmdet involved.
"""
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, METRICS, MODELS
from torch import nn
from torch.utils.data import Dataset


@DATASETS.register_module(force=True)
class TinyRegressionDataset(Dataset):
    """Fixed random pairs ``(x, y)`` with ``y = x @ w``.

    Args:
        length: Number of samples.
        dim: Feature size.
    """

    metainfo = dict(classes=('value', ), tag=np.float64(0.5))

    def __init__(self, length: int = 16, dim: int = 4) -> None:
        gen = torch.Generator().manual_seed(0)
        self.inputs = torch.randn(length, dim, generator=gen)
        self.targets = self.inputs @ torch.arange(1.0, dim + 1.0)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, idx: int) -> dict:
        return dict(inputs=self.inputs[idx], target=self.targets[idx])


@MODELS.register_module(force=True)
class TinyRegressor(BaseModel):
    """A single linear layer trained with MSE.

    Args:
        dim: Feature size.
    """

    def __init__(self, dim: int = 4) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, 1)

    def forward(self,
                inputs: torch.Tensor,
                target: torch.Tensor,
                mode: str = 'tensor') -> Union[dict, list, torch.Tensor]:
        pred = self.fc(inputs).squeeze(-1)
        if mode == 'loss':
            return dict(loss=((pred - target)**2).mean())
        if mode == 'predict':
            return [dict(pred=p, target=t) for p, t in zip(pred, target)]
        return pred


@METRICS.register_module(force=True)
class TinyMSEMetric(BaseMetric):
    """Mean squared error, returned as a numpy scalar like many real metrics."""

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            err = (sample['pred'] - sample['target']).item()
            self.results.append(err**2)

    def compute_metrics(self, results: list) -> dict:
        return dict(mse=np.float64(np.mean(results)))


def tiny_config(work_dir: Optional[str] = None,
                max_iters: int = 4,
                interval: int = 2) -> dict:
    """Return a complete iteration-based runner config for the tiny model."""
    loader = dict(
        batch_size=4,
        num_workers=0,
        dataset=dict(type='TinyRegressionDataset'),
        sampler=dict(type='DefaultSampler', shuffle=True),
        collate_fn=dict(type='default_collate'))
    cfg = dict(
        default_scope='mmengine',
        custom_imports=dict(
            imports=['tiny_mmengine_modules'], allow_failed_imports=False),
        model=dict(type='TinyRegressor'),
        train_dataloader=loader,
        val_dataloader=dict(loader, sampler=dict(type='DefaultSampler',
                                                 shuffle=False)),
        val_evaluator=dict(type='TinyMSEMetric'),
        train_cfg=dict(
            type='IterBasedTrainLoop', max_iters=max_iters,
            val_interval=interval),
        val_cfg=dict(type='ValLoop'),
        test_dataloader=dict(loader, sampler=dict(type='DefaultSampler',
                                                  shuffle=False)),
        test_evaluator=dict(type='TinyMSEMetric'),
        test_cfg=dict(type='TestLoop'),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-2)),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0,
                 end=2),
            dict(type='PolyLR', eta_min=1e-4, power=1.0, by_epoch=False,
                 begin=2, end=max_iters),
        ],
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1),
            checkpoint=dict(
                type='CheckpointHook', by_epoch=False, interval=interval,
                save_best='mse', rule='less')),
        log_processor=dict(by_epoch=False),
        env_cfg=dict(dist_cfg=dict(backend='nccl')),
        randomness=dict(seed=0),
    )
    if work_dir is not None:
        cfg['work_dir'] = work_dir
    return cfg
