"""Safe checkpoint loading and atomic checkpoint saving for mmengine.

torch >= 2.6 loads with ``weights_only=True`` by default, but mmengine 0.10.7
stores more than tensors in a training checkpoint: the message hub keeps
``HistoryBuffer`` objects (numpy arrays inside, plus their statistic methods
pickled as ``getattr(HistoryBuffer, 'mean')``) and metric values arrive as
numpy scalars; dataset metainfo set in a config may be a ``ConfigDict``.
``load_checkpoint_file`` allowlists exactly those globals for
one ``torch.load`` call, so ``--resume`` works without ever falling back to
``weights_only=False``.

mmengine's local storage backend writes files in place, so a crash while
saving leaves a truncated ``.pth``. ``AtomicLocalBackend`` writes to a temporary
file in the same folder and renames it over the target.

References:
    https://pytorch.org/docs/stable/notes/serialization.html#weights-only
"""
import os
import os.path as osp
import pickle
import secrets
from pathlib import Path
from typing import Any, Callable, Union

import mmengine.fileio.io as mmengine_io
import numpy as np
import torch
from mmengine.config import ConfigDict
from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader

__all__ = [
    'AtomicLocalBackend', 'CheckpointError', 'checkpoint_safe_globals',
    'load_checkpoint_file', 'register_checkpoint_io'
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


class AtomicLocalBackend(LocalBackend):
    """Local storage backend whose writes are all-or-nothing.

    Data goes to a hidden temporary file beside the target, is flushed to
    disk, and then ``os.replace`` swaps it in. A failed or interrupted write
    leaves the previous file untouched and removes the temporary one.
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
    def _write_atomic(data: bytes, filepath: Union[str, Path]) -> None:
        filepath = os.fspath(filepath)
        folder, name = osp.split(osp.abspath(filepath))
        os.makedirs(folder, exist_ok=True)
        tmp_path = osp.join(folder, f'.{name}.{secrets.token_hex(4)}.tmp')
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


def register_checkpoint_io() -> None:
    """Route mmengine's local checkpoint loads and file saves through here.

    Loads of local paths use :func:`load_checkpoint_file`; local writes
    (``save_checkpoint``, ``CheckpointHook``, ``mmengine.dump``) use
    :class:`AtomicLocalBackend`. Safe to call any number of times.
    """
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_safe_local, force=True)
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
    # Drop cached plain local backends so singleton users switch too.
    for key, backend in list(mmengine_io.backend_instances.items()):
        if type(backend) is LocalBackend:
            del mmengine_io.backend_instances[key]
