"""Train any mmseg / mmdet / mmengine config with mmengine's Runner.

The config's ``default_scope`` decides which library builds the model, data
and metrics; ``vit_backbones`` is imported first so its backbones resolve.

Usage:
    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]

Examples:
    python tools/train.py configs/swin_t_upernet.py --work-dir work_dirs/swin
    python tools/train.py configs/swin_t_upernet.py --resume   # latest ckpt
    bash tools/dist_train.sh configs/swin_t_upernet.py 2       # 2 processes
"""
import argparse
import datetime
import os
import os.path as osp
import sys
from typing import NoReturn, Optional, Sequence

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:  # run from a checkout, installed or not
    sys.path.insert(0, REPO_ROOT)


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
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys, e.g. train_cfg.max_iters=100 '
        '"model.backbone.out_indices=(1,2,3)"')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none')
    parser.add_argument(
        '--local_rank', '--local-rank', type=int, default=0,
        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def load_config(config: str, cfg_options: Optional[dict], launcher: str,
                work_dir: Optional[str]) -> Config:
    """Read a config and apply the options every tool shares."""
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


def check_data_or_exit(cfg: Config) -> None:
    """Exit with code 2 and a readable message if a dataset is missing."""
    from vit_backbones.engine.data_check import check_datasets
    try:
        check_datasets(cfg)
    except FileNotFoundError as err:
        fail(err)


def setup_cpu_distributed(cfg: Config) -> Optional[str]:
    """Make a distributed run work without CUDA.

    mmengine defaults to NCCL and, for the ``pytorch`` launcher, calls
    ``torch.cuda.set_device`` before creating the process group; its DDP
    wrapper also passes ``device_ids=[LOCAL_RANK]``. Without CUDA this
    switches the backend to gloo, creates the process group here (so the
    runner skips its own init) and wraps the model with ``device_ids=None``.

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
    wrapper.setdefault('find_unused_parameters',
                       cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = wrapper
    return (f'CUDA is not available: distributed backend switched from '
            f'{old_backend!r} to \'gloo\' (CPU), DDP built with '
            'device_ids=None.')


def shutdown_distributed() -> None:
    """Destroy the process group, if any, before the interpreter exits.

    A gloo group still alive at exit can abort a worker ("terminate called without an active exception"),
    which fails a finished distributed run.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def build_runner(cfg: Config) -> Runner:
    """Build the runner named by ``cfg.runner_type`` (default: Runner)."""
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Train the model a config describes."""
    args = parse_args(argv)
    import vit_backbones  # noqa: F401  (registers backbones, necks, ...)
    from vit_backbones.engine import CheckpointError, register_checkpoint_io
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

    note = setup_cpu_distributed(cfg)
    runner = build_runner(cfg)
    if note:
        runner.logger.info(note)
    try:
        runner.train()
    except CheckpointError as err:  # unreadable checkpoint given to resume
        fail(err)
    finally:
        shutdown_distributed()


if __name__ == '__main__':
    main()
