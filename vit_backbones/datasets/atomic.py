"""Write a generated dataset folder all-or-nothing, with a manifest as its completion marker."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable


def write_dataset(root: str | os.PathLike, manifest_name: str, build: Callable[[Path], dict[str, Any]],
                  force: bool = False, exist_ok: bool = False) -> dict[str, Any]:
    """Build a dataset in a temporary sibling of ``root`` and rename it into place once complete.

    Args:
        root: Target folder; it must not exist yet (an empty folder is fine).
        manifest_name: File name of the manifest, written last inside the dataset.
        build: Writes the dataset into the folder it is given (which may not exist yet) and returns the manifest.
        force: Replace whatever is at ``root``.
        exist_ok: If ``root`` already holds a complete dataset, return its manifest instead of raising.

    Returns:
        The manifest.

    Raises:
        FileExistsError: ``root`` exists and is not empty, and neither ``force`` nor ``exist_ok`` allows it.
    """
    root = Path(root)
    if root.exists() and not force:
        if (root / manifest_name).is_file():
            if exist_ok:
                return json.loads((root / manifest_name).read_text())
            raise FileExistsError(f'{root} already holds a demo dataset; pass force=True (--force) to regenerate it')
        if not root.is_dir() or any(root.iterdir()):
            raise FileExistsError(f'{root} exists and is not a demo dataset; remove it or pass force=True (--force)')

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f'.{root.name}.tmp-{os.getpid()}'
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        manifest = build(tmp)
        (tmp / manifest_name).write_text(json.dumps(manifest, indent=2) + '\n')
        _move_into_place(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _move_into_place(tmp: Path, root: Path) -> None:
    """Rename ``tmp`` to ``root``, first moving aside (then deleting) anything already at ``root``."""
    old = root.parent / f'.{root.name}.old-{os.getpid()}'
    if root.exists() or root.is_symlink():
        os.rename(root, old)
    os.rename(tmp, root)
    if old.is_symlink() or old.is_file():
        old.unlink()
    elif old.exists():
        shutil.rmtree(old)
