"""The artifact cache: one root folder, entries keyed by a stage's config hash.

Everything a stage writes goes under ``cache_root()`` (``artifacts/`` in the project root unless the
environment variable ``MACM_CACHE`` names another folder), in a folder named after the
stage and the hash of the config that produced it.  Writes are atomic (a temporary
file in the same folder, then ``os.replace``), so a killed run never leaves a
half-written file where a later run would mistake it for a finished one.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

CACHE_ENV = "MACM_CACHE"


def cache_root() -> Path:
    """The cache root: ``$MACM_CACHE`` if set, else ``artifacts/`` in the project root."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).resolve()
    from .paths import project_root

    return project_root() / "artifacts"


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in sorted(obj.items())}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot hash a config value of type {type(obj).__name__}: {obj!r}")


def config_hash(config: Any, length: int = 12) -> str:
    """A stable short hash of a config (dataclass, dict, list or scalar)."""
    text = json.dumps(_jsonable(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def source_digest(*packages: str, length: int = 12) -> str:
    """Hash of the source files of ``macm_core`` subpackages (e.g. ``"data", "render"``),
    or of the whole package when none is named.

    A stage whose output depends on code puts this in its key, so that changing that
    code invalidates the cached output instead of silently reusing a stale one."""
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for package in sorted(packages) or [""]:  # no names: the whole package
        folder = root / package
        files = sorted(folder.rglob("*.py")) if folder.is_dir() else [root / f"{package}.py"]
        for path in files:
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:length]


def stage_dir(stage: str, config: Any, root: Path | None = None) -> Path:
    """The folder of one stage's output for one config: ``<root>/<stage>/<hash>``."""
    return (root or cache_root()) / stage / config_hash(config)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp creates 0600; cache files are ordinary files
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    return write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())
