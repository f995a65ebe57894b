"""Train any mmseg / mmdet / mmengine config with mmengine's Runner.

The config's ``default_scope`` decides which library builds the model, data
and metrics; ``vit_backbones`` is imported first so its backbones resolve,
and its weights-only checkpoint loading and atomic saving are switched on.

Usage:
    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]

Examples:
    python tools/train.py configs/swin_t_upernet.py --work-dir work_dirs/swin
    python tools/train.py configs/swin_t_upernet.py --resume   # latest ckpt
    bash tools/dist_train.sh configs/swin_t_upernet.py 2       # 2 processes
"""
import argparse
import os.path as osp
import sys
from typing import Optional, Sequence

import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:  # run from a checkout, installed or not
    sys.path.insert(0, REPO_ROOT)
# Importing the package registers backbones, necks, ... (nothing else).
from vit_backbones.engine.checkpoint_io import register_checkpoint_io  # noqa: E402
from vit_backbones.engine.runner_utils import (  # noqa: E402
    add_runner_args,
    check_data_or_exit,
    fail,
    load_config,
    parse_runner_args,
    run_runner,
)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Train a model from an mmseg/mmdet/mmengine config.')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--work-dir',
        help='folder for logs and checkpoints (default: cfg.work_dir or '
        './work_dirs/<config name>)')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        metavar='CKPT',
        help='resume training; with no value, from the latest checkpoint '
        'in the work dir, else from CKPT')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='automatic mixed precision (needs a GPU)')
    add_runner_args(
        parser, 'override config keys, e.g. train_cfg.max_iters=100 '
        '"model.backbone.out_indices=(1,2,3)"')
    return parse_runner_args(parser, argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Train the model a config describes."""
    args = parse_args(argv)
    register_checkpoint_io()  # idempotent: safe loads, atomic saves

    cfg = load_config(args.config, args.cfg_options, args.launcher,
                      args.work_dir)
    if args.amp:
        if not torch.cuda.is_available():
            fail('--amp needs a CUDA device; none is available.')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        if '://' not in args.resume and not osp.isfile(args.resume):
            fail(f'checkpoint to resume from not found: {args.resume}')
        cfg.resume, cfg.load_from = True, args.resume
    check_data_or_exit(cfg)
    run_runner(cfg, 'train')


if __name__ == '__main__':
    main()
