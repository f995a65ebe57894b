"""What ``tools/train.py`` and ``tools/test.py`` share: config loading, the common options, runner set-up.

The tools stay thin command lines over these functions (as mmdet's and timm's do), so no tool imports another.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import os
import os.path as osp
import sys
from collections.abc import Sequence
from typing import Literal, NoReturn

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .checkpoint_io import CheckpointError
from .data_check import LOADERS, check_datasets

__all__ = [
    'LAUNCHERS', 'add_runner_args', 'build_runner', 'check_data_or_exit', 'fail', 'load_config', 'parse_runner_args',
    'run_runner', 'setup_cpu_distributed', 'shutdown_distributed'
]

LAUNCHERS: tuple[str, ...] = ('none', 'pytorch', 'slurm', 'mpi')


def add_runner_args(parser: argparse.ArgumentParser, cfg_options_help: str) -> None:
    """Add the options every tool takes: ``--cfg-options``, ``--launcher`` and the launcher's ``--local-rank``.

    Args:
        parser: The tool's parser; its own arguments come first.
        cfg_options_help: Help text of ``--cfg-options`` (an example that fits the tool).
    """
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help=cfg_options_help)
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)


def parse_runner_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line of a parser set up by :func:`add_runner_args`.

    Older ``torch.distributed.launch`` passes the rank as ``--local-rank`` instead of setting ``LOCAL_RANK``;
    the environment variable is set from it when missing, since mmengine reads only the variable.

    Args:
        parser: The tool's parser.
        argv: Arguments to parse (default: ``sys.argv[1:]``).

    Returns:
        The parsed arguments.
    """
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def load_config(config: str, cfg_options: dict | None, launcher: str, work_dir: str | None) -> Config:
    """Read a config and apply the options every tool shares.

    Args:
        config: Path of the config file.
        cfg_options: ``--cfg-options`` overrides, merged into the config.
        launcher: One of :data:`LAUNCHERS`.
        work_dir: Work dir from the command line; else the config's, else ``./work_dirs/<config name>``.

    Returns:
        The config, ready for :func:`build_runner`.
    """
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    if work_dir:
        cfg.work_dir = work_dir
    elif not cfg.get('work_dir'):
        name = osp.splitext(osp.basename(config))[0]
        cfg.work_dir = osp.join('./work_dirs', name)
    return cfg


def fail(message: object) -> NoReturn:
    """Print a user-facing error (no traceback) and exit with code 2."""
    print(f'error: {message}', file=sys.stderr)
    sys.exit(2)


def check_data_or_exit(cfg: Config, loaders: Sequence[str] = LOADERS) -> None:
    """Exit with code 2 and a readable message if a dataset of ``loaders`` is missing.

    Args:
        cfg: The full config (its ``data_hint``, if any, is part of the message).
        loaders: Dataloader keys whose datasets are needed (a test run needs only ``test_dataloader``).
    """
    try:
        check_datasets(cfg, loaders)
    except FileNotFoundError as err:
        fail(err)


def setup_cpu_distributed(cfg: Config) -> str | None:
    """Make a distributed run work without CUDA.

    mmengine defaults to NCCL and, for the ``pytorch`` launcher, calls ``torch.cuda.set_device`` before creating
    the process group; its DDP wrapper also passes ``device_ids=[LOCAL_RANK]``. Without CUDA this switches the
    backend to gloo, creates the process group here (so the runner skips its own init) and wraps the model with
    ``device_ids=None``.

    Args:
        cfg: The config; changed in place.

    Returns:
        A line for the log when something was changed, else ``None``.
    """
    if cfg.launcher == 'none' or torch.cuda.is_available():
        return None
    if cfg.get('env_cfg') is None:
        cfg.env_cfg = dict()
    dist_cfg = dict(cfg.env_cfg.get('dist_cfg') or {})
    old_backend = dist_cfg.get('backend', 'nccl')
    dist_cfg['backend'] = 'gloo'
    cfg.env_cfg.dist_cfg = dist_cfg
    if cfg.launcher == 'pytorch' and not torch_dist.is_initialized():
        timeout = datetime.timedelta(seconds=dist_cfg.get('timeout', 1800))
        torch_dist.init_process_group(backend='gloo', timeout=timeout)
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper.setdefault('device_ids', None)
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = wrapper
    return (f'CUDA is not available: distributed backend switched from {old_backend!r} to \'gloo\' (CPU), '
            'DDP built with device_ids=None.')


def shutdown_distributed(synchronize: bool = False) -> None:
    """End the process group, if any, and free its backend before the interpreter exits.

    ``destroy_process_group`` only unregisters the group: the gloo backend and its worker threads live as long as
    something references it, and DDP's reducer does, through reference cycles of the runner. Destroyed during
    interpreter teardown instead, it can abort a worker of a finished run ("terminate called without an active
    exception"). So the caller drops its runner first, and this collects the cycles after destroying the group,
    which joins the backend's threads now.

    Args:
        synchronize: Wait for every rank at a barrier first (only after a successful run: a rank that failed
            may never reach it).
    """
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return
    if synchronize:
        torch_dist.barrier()
    torch_dist.destroy_process_group()
    gc.collect()


def build_runner(cfg: Config) -> Runner:
    """Build the runner named by ``cfg.runner_type`` (default: mmengine's Runner)."""
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def run_runner(cfg: Config, mode: Literal['train', 'test']) -> None:
    """Build the runner for ``cfg`` and train or test with it, ending any process group afterwards.

    An unreadable checkpoint (``load_from``/``resume``) exits with code 2 and a readable message.

    Args:
        cfg: The full config.
        mode: ``'train'`` or ``'test'``.
    """
    if mode not in ('train', 'test'):
        raise ValueError(f"mode must be 'train' or 'test', not {mode!r}")
    note = setup_cpu_distributed(cfg)
    finished = False
    try:
        _build_and_run(cfg, mode, note)  # the runner is unreferenced once this returns
        finished = True
    except CheckpointError as err:
        fail(err)
    finally:
        shutdown_distributed(synchronize=finished)


def _build_and_run(cfg: Config, mode: Literal['train', 'test'], note: str | None) -> None:
    """Build the runner and train or test with it (see :func:`run_runner`)."""
    runner = build_runner(cfg)
    if note:
        runner.logger.info(note)
    if mode == 'train':
        runner.train()
    else:
        runner.test()
