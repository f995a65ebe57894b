"""Training-engine helpers: safe checkpoint loading and atomic saving."""
from .checkpoint_io import (AtomicLocalBackend, CheckpointError,
                            checkpoint_safe_globals, load_checkpoint_file,
                            register_checkpoint_io)

__all__ = [
    'AtomicLocalBackend', 'CheckpointError', 'checkpoint_safe_globals',
    'load_checkpoint_file', 'register_checkpoint_io'
]
