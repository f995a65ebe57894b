"""Ending a distributed run: the gloo backend's threads are joined before the interpreter exits."""
import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from vit_backbones.engine.runner_utils import shutdown_distributed

GLOO_WORKER = 'pt_gloo_runloop'  # the name ProcessGroupGloo gives its worker threads


def thread_names() -> list[str]:
    names = []
    for tid in os.listdir('/proc/self/task'):
        try:
            with open(f'/proc/self/task/{tid}/comm') as f:
                names.append(f.read().strip())
        except OSError:  # the thread ended meanwhile
            pass
    return names


def test_shutdown_joins_gloo_threads_held_by_ddp_cycles(tmp_path):
    store = dist.FileStore(str(tmp_path / 'store'), 1)
    dist.init_process_group('gloo', store=store, rank=0, world_size=1)
    try:
        model = DistributedDataParallel(nn.Linear(3, 2))
        model(torch.randn(4, 3)).sum().backward()
        holder = {'model': model}
        holder['self'] = holder  # a reference cycle, as the runner and its hooks make
        del model, holder
        assert GLOO_WORKER in thread_names()
        shutdown_distributed(synchronize=True)
        assert not dist.is_initialized()
        # DDP's reducer kept the backend alive after destroy_process_group; the collection freed it
        assert GLOO_WORKER not in thread_names()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_shutdown_without_group_is_a_no_op():
    assert not dist.is_initialized()
    shutdown_distributed(synchronize=True)
    assert not dist.is_initialized()
