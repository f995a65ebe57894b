"""Training-engine helpers: safe checkpoint loading, atomic saving, dataset presence checks, runner set-up.

Nothing here changes mmengine on import; call :func:`register_checkpoint_io` (or import
:mod:`vit_backbones.engine.safe_checkpoint_io`) to switch the checkpoint I/O on.
"""
from .checkpoint_io import (
                            AtomicLocalBackend,
                            CheckpointError,
                            checkpoint_safe_globals,
                            enable_safe_checkpoint_io,
                            load_checkpoint_file,
                            register_checkpoint_io,
)
from .data_check import check_datasets

__all__ = [
    'AtomicLocalBackend', 'CheckpointError', 'checkpoint_safe_globals',
    'check_datasets', 'enable_safe_checkpoint_io', 'load_checkpoint_file',
    'register_checkpoint_io'
]
