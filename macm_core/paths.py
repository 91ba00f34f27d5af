"""Where the project lives: the folder that holds ``_toc.yml`` (the book's root).

Notebooks run with papermill from the project root, and under nbval from the folder of
the reference notebook; both find the same root by looking upwards from the current
folder.  ``MACM_ROOT`` overrides the search.
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "MACM_ROOT"
MARKER = "_toc.yml"


def project_root() -> Path:
    """The project root: ``$MACM_ROOT``, else the nearest folder upwards holding _toc.yml."""
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).resolve()
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / MARKER).is_file():
            return folder.resolve()
    package_parent = Path(__file__).resolve().parent.parent
    if (package_parent / MARKER).is_file():
        return package_parent
    raise FileNotFoundError(
        f"cannot find the macm project root (a folder holding {MARKER}) above {Path.cwd()}: "
        f"run from inside the repository or set {ROOT_ENV}"
    )


def resolve(path: str | os.PathLike) -> Path:
    """A path from a profile: absolute as given, relative to the project root otherwise."""
    path = Path(path)
    return path if path.is_absolute() else project_root() / path
