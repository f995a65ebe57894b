"""Evaluate a checkpoint on the test split of any mmseg / mmdet config.

Usage:
    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE.pkl]
        [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]

``--out`` dumps the raw predictions with mmengine's ``DumpResults`` metric,
which works for segmentation and detection alike. Config handling and runner
set-up are shared with ``train.py`` through
:mod:`vit_backbones.engine.runner_utils`.
"""
import argparse
import os.path as osp
import sys
from typing import Optional, Sequence

from mmengine.config import Config

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
        description='Test a checkpoint with an mmseg/mmdet/mmengine config.')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file (.pth)')
    parser.add_argument(
        '--work-dir',
        help='folder for the test log and metrics (default: cfg.work_dir or '
        './work_dirs/<config name>)')
    parser.add_argument(
        '--out', help='dump raw predictions to this .pkl/.pickle file')
    add_runner_args(
        parser, 'override config keys, e.g. test_dataloader.batch_size=2')
    args = parse_runner_args(parser, argv)
    if args.out and not args.out.endswith(('.pkl', '.pickle')):
        parser.error('--out must name a .pkl or .pickle file')
    return args


def add_dump_metric(cfg: Config, out_file: str) -> None:
    """Append mmengine's ``DumpResults`` to the test evaluator."""
    dump = dict(type='mmengine.DumpResults', out_file_path=out_file)
    evaluator = cfg.test_evaluator
    if isinstance(evaluator, (list, tuple)):
        cfg.test_evaluator = [*evaluator, dump]
    elif 'metrics' in evaluator:  # an Evaluator config with a metric list
        metrics = evaluator['metrics']
        metrics = list(metrics) if isinstance(metrics, (list, tuple)) else [
            metrics
        ]
        evaluator['metrics'] = [*metrics, dump]
    else:
        cfg.test_evaluator = [evaluator, dump]


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Evaluate ``checkpoint`` on the config's test dataloader."""
    args = parse_args(argv)
    register_checkpoint_io()  # idempotent: safe loads, atomic saves

    cfg = load_config(args.config, args.cfg_options, args.launcher,
                      args.work_dir)
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        fail(f'checkpoint not found: {args.checkpoint}')
    cfg.load_from = args.checkpoint
    if args.out:
        add_dump_metric(cfg, args.out)
    # Testing reads only the test split; a missing train set is no error.
    check_data_or_exit(cfg, loaders=('test_dataloader',))
    run_runner(cfg, 'test')


if __name__ == '__main__':
    main()
