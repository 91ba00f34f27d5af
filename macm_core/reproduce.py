"""``macm reproduce``: execute every notebook with papermill, then build the book.

Each notebook in ``notebooks/`` is a jupytext py:percent file with a ``parameters`` cell
(``profile``, ``seed``).  It is converted to ``.ipynb``, executed by papermill in the
project root with the current interpreter's kernel, and written to the output folder
(``book/executed`` by default), where ``_toc.yml`` picks it up.  An executed notebook
records a key (the hash of its source, the profile file, the seed and the package's
source); a later run with the same key reuses it unless ``force`` is set.  A failing
notebook stops the run with a ``NotebookFailed`` naming the notebook and the cell; its
partially executed copy is kept beside the output for inspection.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import figures
from .cache import source_digest
from .config import load_profile, profile_path
from .paths import project_root, resolve

KERNEL = "python3"
EXECUTED_DIR = "book/executed"


class NotebookFailed(RuntimeError):
    """A notebook raised during execution; the message is one line a user can act on."""


class UnknownNotebook(ValueError):
    """A notebook name given to --only that does not exist in notebooks/."""


@dataclass(frozen=True)
class RunResult:
    name: str
    output: Path
    seconds: float
    reused: bool


def notebook_sources(root: Path | None = None) -> dict[str, Path]:
    """Every notebook source, by name (file stem), in execution order."""
    folder = (root or project_root()) / "notebooks"
    return {p.stem: p for p in sorted(folder.glob("[0-9]*.py"))}


def select(names: list[str] | None, root: Path | None = None) -> dict[str, Path]:
    sources = notebook_sources(root)
    if not names:
        return sources
    unknown = [n for n in names if n.removesuffix(".py") not in sources]
    if unknown:
        raise UnknownNotebook(
            f"unknown notebook {unknown[0]!r}: the notebooks are {', '.join(sources) or '(none)'}"
        )
    return {n.removesuffix(".py"): sources[n.removesuffix(".py")] for n in names}


def run_key(source: Path, profile: str, seed: int) -> str:
    digest = hashlib.sha256()
    digest.update(source.read_bytes())
    digest.update(profile_path(profile).read_bytes())
    digest.update(str(seed).encode())
    digest.update(source_digest().encode())
    return digest.hexdigest()[:16]


def machine() -> dict[str, str]:
    """What decides the last bits of this machine's float results: the CPU (vendor, model)
    and the instruction set torch dispatches to, and the torch build.

    Training, pose estimation and fitting round differently on another CPU (the smoke
    references made on one machine differ from a run on another in the last digits of
    losses, fit errors and the captions that follow), so an executed notebook records
    where it ran, and the nbval references are compared only on such a machine."""
    import platform

    import torch

    cpu = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() in ("vendor_id", "model name") and name.strip() not in cpu:
                cpu[name.strip()] = value.strip()
    except OSError:  # not Linux
        pass
    return {"cpu_vendor": cpu.get("vendor_id", platform.processor() or "unknown"),
            "cpu_model": cpu.get("model name", platform.machine() or "unknown"),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__}


def recorded(path: Path) -> dict:
    """What ``execute`` recorded in an executed notebook's metadata (key, profile, seed,
    machine); empty for a notebook it did not write."""
    import nbformat

    return nbformat.read(path, as_version=4).metadata.get("macm", {})


def references_differ(folder: Path) -> str | None:
    """Why the executed notebooks in ``folder`` (the nbval references) were made on another
    kind of machine than this one, in one line; None when every one was made on this kind."""
    here = machine()
    for path in sorted(Path(folder).glob("*.ipynb")):
        made_on = recorded(path).get("machine")
        if made_on != here:
            return (f"{path.name} was executed on {made_on or 'a machine it does not record'}, "
                    f"this machine is {here}")
    return None


def _recorded_key(path: Path) -> str | None:
    try:
        return recorded(path).get("key")
    except Exception:  # an unreadable executed copy is simply redone
        return None


def to_ipynb(source: Path, destination: Path) -> None:
    """Convert a py:percent notebook to .ipynb with the project's kernel spec."""
    import jupytext
    import nbformat

    notebook = jupytext.read(source)
    if not any("parameters" in c.metadata.get("tags", []) for c in notebook.cells):
        raise NotebookFailed(f"{source} has no cell tagged 'parameters'; papermill needs one")
    notebook.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3", "language": "python"}
    notebook.metadata.pop("jupytext", None)
    nbformat.write(notebook, destination)


def execute(name: str, source: Path, output: Path, *, profile: str, seed: int, key: str) -> None:
    """Run one notebook with papermill; raise NotebookFailed with a one-line cause."""
    import nbformat
    import papermill

    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.with_name(f".{output.stem}.input.ipynb")
    partial = output.with_name(f"{output.stem}.failed.ipynb")
    running = output.with_name(f".{output.stem}.running.ipynb")
    to_ipynb(source, staging)
    try:
        papermill.execute_notebook(
            str(staging), str(running), parameters={"profile": profile, "seed": seed},
            kernel_name=KERNEL, cwd=str(project_root()), progress_bar=False, log_output=False,
        )
    except papermill.PapermillExecutionError as err:
        running.replace(partial)
        evalue = str(err.evalue).strip().splitlines()
        raise NotebookFailed(
            f"notebook {name} failed in cell {err.cell_index} (execution count {err.exec_count}): "
            f"{err.ename}: {evalue[-1] if evalue else ''} -- partial output kept in {partial}"
        ) from None
    finally:
        staging.unlink(missing_ok=True)
    notebook = nbformat.read(running, as_version=4)
    notebook.metadata["macm"] = {"key": key, "profile": profile, "seed": seed, "machine": machine()}
    for cell in notebook.cells:  # the book shows the injected values, not the defaults
        if "parameters" in cell.metadata.get("tags", []):
            cell.metadata["tags"] = sorted({*cell.metadata["tags"], "remove-cell"})
    nbformat.write(notebook, running)
    running.replace(output)
    partial.unlink(missing_ok=True)


def run_notebooks(*, profile: str = "cpu", seed: int | None = None, only: list[str] | None = None,
                  force: bool = False, output_dir: str | Path | None = None) -> list[RunResult]:
    """Execute the selected notebooks into ``output_dir``; reuse those whose key matches."""
    from tqdm.auto import tqdm

    config = load_profile(profile)
    seed = config.seed if seed is None else seed
    root = project_root()
    out = Path(output_dir) if output_dir else root / EXECUTED_DIR
    results = []
    chosen = select(only, root)
    bar = tqdm(chosen.items(), desc=f"notebooks ({config.name})", unit="nb", file=sys.stderr)
    figures_dir = resolve(config.book.figures_dir)
    deferred = os.environ.get(figures.DEFER_ENV)
    os.environ[figures.DEFER_ENV] = "1"  # the kernels leave their static figures to one exporter
    try:
        with figures.exporting_in_background(figures_dir):
            for name, source in bar:
                bar.set_postfix_str(name)
                output = out / f"{name}.ipynb"
                key = run_key(source, profile, seed)
                start = time.perf_counter()
                reused = not force and output.is_file() and _recorded_key(output) == key
                if not reused:
                    execute(name, source, output, profile=profile, seed=seed, key=key)
                seconds = time.perf_counter() - start
                results.append(RunResult(name, output, seconds, reused))
                tqdm.write(f"{name}: {'reused' if reused else 'executed'} in {seconds:.1f} s", file=sys.stderr)
    finally:
        if deferred is None:
            os.environ.pop(figures.DEFER_ENV)
        else:
            os.environ[figures.DEFER_ENV] = deferred
    # what the background export left (normally nothing; its error, if it failed, is raised here)
    start = time.perf_counter()
    written = figures.export_pending(figures_dir)
    if written:
        tqdm.write(f"figures: {len(written)} files exported in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return results


def build_book(root: Path | None = None) -> Path:
    """Build the HTML book with jupyter-book (it executes nothing itself)."""
    from .figures import plotly_js_path

    root = root or project_root()
    static = root / "book" / "_static"
    static.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(plotly_js_path(), static / "plotly.min.js")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    command = [str(jupyter_book), "build", str(root), "--builder", "html"]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True)
    log = root / "_build" / "jupyter-book.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:]
        raise RuntimeError(f"jupyter-book build failed: {' '.join(tail)} (full log: {log})")
    index = root / "_build" / "html" / "index.html"
    if not index.is_file():
        raise RuntimeError(f"jupyter-book build produced no {index} (full log: {log})")
    return index
