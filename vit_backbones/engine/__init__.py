"""Training-engine helpers: safe checkpoint loading, atomic saving, dataset presence checks."""
from .checkpoint_io import (AtomicLocalBackend, CheckpointError,
                            checkpoint_safe_globals, load_checkpoint_file,
                            register_checkpoint_io)
from .data_check import check_datasets

__all__ = [
    'AtomicLocalBackend', 'CheckpointError', 'checkpoint_safe_globals',
    'check_datasets', 'load_checkpoint_file', 'register_checkpoint_io'
]
