"""Safe checkpoint loading and atomic checkpoint saving for mmengine.

torch >= 2.6 loads with ``weights_only=True`` by default, but mmengine 0.10.7
stores more than tensors in a training checkpoint: the message hub keeps
``HistoryBuffer`` objects (numpy arrays inside, plus their statistic methods
pickled as ``getattr(HistoryBuffer, 'mean')``) and metric values arrive as
numpy scalars; dataset metainfo set in a config may be a ``ConfigDict``.
Official Swin and Shuffle Transformer training checkpoints add their yacs
``CfgNode`` config, read as a plain dict (:class:`InertConfigNode`).
``load_checkpoint_file`` allowlists exactly those globals for
one ``torch.load`` call, so ``--resume`` works without ever falling back to
``weights_only=False``.

mmengine's local storage backend writes files in place, so a crash while
saving leaves a truncated ``.pth``. ``AtomicLocalBackend`` writes to a temporary
file in the same folder and renames it over the target. A temporary names its
writer (host and process id), so the next save to the same target removes the
ones that a killed writer left behind.

Nothing here changes mmengine when imported: :func:`register_checkpoint_io`
switches both on (our tools call it; configs for mmseg's or mmdet's own
``tools/train.py`` import :mod:`vit_backbones.engine.safe_checkpoint_io`).

References:
    https://pytorch.org/docs/stable/notes/serialization.html#weights-only
"""
import os
import os.path as osp
import pickle
import re
import secrets
import socket
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Union
from urllib.parse import urlparse

import numpy as np
import torch
from mmengine.config import ConfigDict
from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader

__all__ = [
    'AtomicLocalBackend', 'CheckpointError', 'checkpoint_safe_globals',
    'enable_safe_checkpoint_io', 'huggingface_cache_name', 'load_checkpoint_file',
    'load_from_huggingface',
    'register_checkpoint_io'
]

MapLocation = Union[str, torch.device, Callable, dict, None]


class CheckpointError(RuntimeError):
    """A checkpoint file exists but is not a loadable PyTorch state dict."""


def _history_buffer_method(owner: Any, name: str) -> Callable:
    """Stand-in for ``builtins.getattr`` while unpickling.

    ``HistoryBuffer.__getstate__`` stores its statistic methods, which pickle
    as ``getattr(HistoryBuffer, name)``. Only that lookup is served, so the
    checkpoint cannot reach arbitrary attributes (and through them, code).
    """
    attr = vars(HistoryBuffer).get(name) if owner is HistoryBuffer else None
    if name.startswith('_') or not callable(attr):
        raise pickle.UnpicklingError(
            f'getattr({owner!r}, {name!r}) is not allowed in a checkpoint; '
            'only public HistoryBuffer methods are')
    return attr


class InertConfigNode:
    """Stand-in for the yacs ``CfgNode`` that official training scripts (Swin, Shuffle Transformer) pickle into
    their checkpoints under ``'config'``: it unpickles as a plain ``OrderedDict`` of the config's items (yacs'
    flags such as ``__immutable__`` land as inert attributes of that dict). No code of the original class runs,
    and yacs need not be installed."""

    def __new__(cls, *args: Any) -> 'OrderedDict[str, Any]':  # type: ignore[misc]
        return OrderedDict()


def _numpy_globals() -> list:
    """Numpy names that arrays, scalars and dtypes pickle through."""
    # Ask numpy which functions it pickles through rather than import them.
    reconstruct = np.zeros(0).__reduce__()[0]
    scalar = np.float64(0).__reduce__()[0]
    named = []
    # numpy 2 pickles under ``numpy._core``, numpy 1 under ``numpy.core``.
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        named += [(reconstruct, f'{module}._reconstruct'),
                  (scalar, f'{module}.scalar')]
    # A dtype is rebuilt as ``numpy.dtype(code)`` and then ``BUILD`` is run on
    # the instance, whose type is the per-dtype class (``Float64DType``...).
    dtype_classes = sorted({type(np.dtype(code))
                            for code in np.typecodes['All'] if code != 'O'},
                           key=lambda cls: cls.__name__)
    return named + [np.ndarray, np.dtype] + dtype_classes


def checkpoint_safe_globals() -> list:
    """Globals allowed while loading a checkpoint with ``weights_only=True``.

    Returns:
        Entries for ``torch.serialization.safe_globals``: objects, or
        ``(object, 'module.qualname')`` pairs when the pickled name differs.
    """
    return _numpy_globals() + [
        ConfigDict,  # metainfo given in a config (``dataset.metainfo``)
        HistoryBuffer,
        (_history_buffer_method, 'builtins.getattr'),
        (InertConfigNode, 'yacs.config.CfgNode'),  # 'config' of official Swin / Shuffle training checkpoints
    ]


def load_checkpoint_file(filename: Union[str, Path],
                         map_location: MapLocation = None) -> dict:
    """Load a local checkpoint with ``weights_only=True``.

    Args:
        filename: Path of a ``.pth`` file.
        map_location: Passed to ``torch.load``.

    Returns:
        The checkpoint dict (a bare state dict or mmengine's
        ``{'meta', 'state_dict', 'message_hub', ...}``).

    Raises:
        FileNotFoundError: ``filename`` is not an existing file.
        CheckpointError: The file is not a PyTorch checkpoint holding a dict.
    """
    filename = osp.expanduser(os.fspath(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'Checkpoint file not found: {filename}')
    expected = 'expected a PyTorch checkpoint (.pth) holding a state dict'
    try:
        with torch.serialization.safe_globals(checkpoint_safe_globals()):
            checkpoint = torch.load(
                filename, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f'Cannot load checkpoint {filename}: {expected}. '
            f'Original error: {type(err).__name__}: {err}') from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f'Cannot use checkpoint {filename}: {expected}, but it holds '
            f'a {type(checkpoint).__name__}.')
    return checkpoint


def load_from_safe_local(filename: str, map_location: MapLocation) -> dict:
    """mmengine loader for local paths (its log names it ``safe_local``)."""
    return load_checkpoint_file(filename, map_location)


HF_PREFIX = 'https://huggingface.co/'


def huggingface_cache_name(url: str) -> str:
    """Cache file name of a Hugging Face hub file URL: ``owner--repo--revision--path``.

    mmengine caches downloads by the URL's last path component, which every hub weight file shares
    (``pytorch_model.bin``), so one model's file would be served for another's; this name keeps them apart.

    Raises:
        ValueError: ``url`` is not ``https://huggingface.co/{owner}/{repo}/resolve/{revision}/{path}``.
    """
    parts = urlparse(url).path.strip('/').split('/')
    if not url.startswith(HF_PREFIX) or len(parts) < 5 or parts[2] != 'resolve' or not all(parts):
        raise ValueError(f'expected a Hugging Face file URL https://huggingface.co/OWNER/REPO/resolve/REVISION/FILE, '
                         f'got {url!r}')
    return '--'.join(parts[:2] + parts[3:])


def load_from_huggingface(filename: str, map_location: MapLocation) -> dict:
    """mmengine loader for Hugging Face hub file URLs: download once into ``torch.hub.get_dir()/checkpoints`` under
    :func:`huggingface_cache_name` (atomically, by ``torch.hub.download_url_to_file``), then load it safely
    (``.safetensors`` with ``safetensors``, anything else as :func:`load_checkpoint_file`)."""
    cached = Path(torch.hub.get_dir()) / 'checkpoints' / huggingface_cache_name(filename)
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(filename, str(cached), progress=False)
    if cached.suffix == '.safetensors':
        from safetensors.torch import load_file
        device = map_location if isinstance(map_location, (str, torch.device)) else 'cpu'
        return load_file(str(cached), device=str(device))
    return load_checkpoint_file(cached, map_location)


# Temporaries this process is writing now; a file named with our own pid but
# not listed here was left by an earlier process that had the same pid.
_WRITING: set[str] = set()
_WRITING_LOCK = threading.Lock()


def _host_tag() -> str:
    """This machine's name as it appears in temporary file names (no dots)."""
    return re.sub(r'[^A-Za-z0-9_-]', '_', socket.gethostname())[:24] or 'host'


def _pid_alive(pid: int) -> bool:
    """Whether a process with id ``pid`` exists on this machine.

    Errs on the side of "alive" (the caller then keeps the file): where the
    answer is unknown, or when ``pid`` was reused by an unrelated process.
    """
    if os.name != 'posix' or pid <= 0:
        return True  # os.kill(pid, 0) probes only on POSIX
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, owned by another user
        return True
    return True


class AtomicLocalBackend(LocalBackend):
    """Local storage backend whose writes are all-or-nothing.

    Data goes to a hidden temporary file beside the target, is flushed to
    disk, and then ``os.replace`` swaps it in. A failed or interrupted write
    leaves the previous file untouched and removes the temporary one.

    A temporary is named ``.{name}.{host}.{pid}-{random}.tmp``. A writer
    killed mid-write (``kill -9``, power loss) cannot remove its own, so every
    write first removes the temporaries of the same target whose writer ran
    on this host and no longer exists, plus those of the older
    ``.{name}.{random}.tmp`` naming, which carry no owner. Temporaries of live
    processes (this one's included), of other hosts (a shared file system)
    and any other file are kept.
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Write bytes to ``filepath`` atomically, creating its folder."""
        self._write_atomic(obj, filepath)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        """Write text to ``filepath`` atomically, creating its folder."""
        self._write_atomic(obj.encode(encoding), filepath)

    @staticmethod
    def temporary_name(name: str) -> str:
        """A fresh temporary file name for target file ``name``, owned by this process."""
        return f'.{name}.{_host_tag()}.{os.getpid()}-{secrets.token_hex(4)}.tmp'

    @staticmethod
    def stale_temporaries(folder: Union[str, Path], name: str) -> list[str]:
        """Temporaries of target ``name`` in ``folder`` left by writers that are gone.

        Args:
            folder: The target's folder.
            name: The target's file name.

        Returns:
            Paths of this class's temporaries for ``name`` whose writing
            process ran on this host and has exited, and of old-style ones
            (no owner recorded).
        """
        escaped, host = re.escape(name), _host_tag()
        owned = re.compile(rf'\.{escaped}\.([A-Za-z0-9_-]+)\.(\d+)-[0-9a-f]{{8}}\.tmp')
        ownerless = re.compile(rf'\.{escaped}\.[0-9a-f]{{8}}\.tmp')
        stale = []
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return stale
        for entry in entries:
            match = owned.fullmatch(entry.name)
            if match:
                pid = int(match[2])
                if match[1] != host:
                    dead = False  # another machine: its processes are unknown here
                elif pid == os.getpid():
                    with _WRITING_LOCK:
                        dead = entry.path not in _WRITING
                else:
                    dead = not _pid_alive(pid)
            else:
                dead = ownerless.fullmatch(entry.name) is not None
            if dead and entry.is_file(follow_symlinks=False):
                stale.append(entry.path)
        return stale

    @classmethod
    def remove_stale_temporaries(cls, filepath: Union[str, Path]) -> list[str]:
        """Remove the temporaries of ``filepath`` that dead writers left behind.

        Args:
            filepath: The target file.

        Returns:
            The paths removed. Files that vanish meanwhile or cannot be
            removed are skipped: cleaning up never fails a save.
        """
        folder, name = osp.split(osp.abspath(os.fspath(filepath)))
        removed = []
        for path in cls.stale_temporaries(folder, name):
            try:
                os.remove(path)
            except OSError:
                continue
            removed.append(path)
        return removed

    @classmethod
    def _write_atomic(cls, data: bytes, filepath: Union[str, Path]) -> None:
        """Write ``data`` to a temporary beside ``filepath``, then rename it over ``filepath``."""
        filepath = os.fspath(filepath)
        folder, name = osp.split(osp.abspath(filepath))
        os.makedirs(folder, exist_ok=True)
        cls.remove_stale_temporaries(filepath)
        tmp_path = osp.join(folder, cls.temporary_name(name))
        with _WRITING_LOCK:
            _WRITING.add(tmp_path)
        try:
            # O_EXCL: never clobber another writer; 0o666 lets umask decide.
            fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                with os.fdopen(fd, 'wb') as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp_path, filepath)
            except BaseException:
                if osp.exists(tmp_path):
                    os.remove(tmp_path)
                raise
        finally:
            with _WRITING_LOCK:
                _WRITING.discard(tmp_path)


def register_checkpoint_io() -> None:
    """Switch mmengine's local checkpoint loads and file saves to this module.

    Afterwards loads of local paths (``load_from``, ``resume``,
    ``init_cfg=dict(type='Pretrained')``) use :func:`load_checkpoint_file`,
    Hugging Face hub URLs :func:`load_from_huggingface` (one cache file per
    repository and revision), and local backends created from then on are :class:`AtomicLocalBackend`
    (``save_checkpoint``, ``CheckpointHook``, ``LoggerHook``). Only public
    mmengine APIs are used (``CheckpointLoader.register_scheme`` and
    ``register_backend``, both with ``force=True``); mmengine's caches are
    left alone. Safe to call any number of times; nothing is switched on by
    importing :mod:`vit_backbones`.

    Call it before the Runner is built. A backend instance that mmengine
    already cached keeps being used: its module-level helpers
    (``mmengine.fileio.put``, ``dump``, ...) keep one instance per prefix,
    created at their first call. From a config, use ``custom_imports`` with
    :mod:`vit_backbones.engine.safe_checkpoint_io`, which calls this at import.
    """
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_safe_local, force=True)
    CheckpointLoader.register_scheme(
        prefixes=HF_PREFIX, loader=load_from_huggingface, force=True)
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')


enable_safe_checkpoint_io = register_checkpoint_io
