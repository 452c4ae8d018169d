"""Atomic writes (a crash mid-write leaves the previous file or directory intact, never a truncated one) and
the cache directory every layer shares (``cache_root``)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def cache_root() -> Path:
    """``$SIRI_CACHE`` or ``~/.cache/siri``: built models (``models/``) and generated games
    (``textworld/``)."""
    return Path(os.environ.get("SIRI_CACHE") or Path.home() / ".cache" / "siri")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary directory to fill; on success it replaces ``path``, on failure it is removed.

    The temporary directory is a hidden sibling (``.NAME.*.tmp``), so the rename stays on one filesystem
    and a directory named ``path`` only ever appears complete. Its files are fsynced before the rename, so
    a power loss cannot publish a directory of empty files. A process killed mid-write leaves the hidden
    sibling behind; whatever looks for ``path`` never sees it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        for written in tmp.rglob("*"):
            if written.is_file():
                with written.open("rb") as f:
                    os.fsync(f.fileno())
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def dir_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """An exclusive lock on building directory ``path`` (a file ``.<name>.lock`` beside it): one builder at a
    time across processes, the others wait, then find it built and reuse it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
