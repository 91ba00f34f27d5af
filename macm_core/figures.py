"""Plotly figures for the book: shown offline as HTML, exported as static PNG and SVG.

The HTML output of a figure carries no plotly.js (the book ships it once as a static
file, see ``_config.yml``) and a div id derived from the figure's name, so executed
notebooks are reproducible byte for byte and nbval can compare them.  ``export`` writes
the static copies with kaleido, which drives Debian's chromium.  Under ``macm reproduce``
(``DEFER_ENV`` set) ``export`` only leaves the figure in ``<out_dir>/.pending/``: a browser
takes ~2.5 s to start, once per notebook otherwise.  ``exporting_in_background`` renders
those jobs with one browser while the notebooks run, at the lowest CPU priority, so that
the rendering takes the CPU time the notebooks leave idle; ``export_pending`` renders what
is left.
"""
from __future__ import annotations

import json
import logging
import os
import select
import shutil
import subprocess
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

import plotly.graph_objects as go

# kaleido's browser driver logs (with a traceback) and then ignores a garbled message from
# chromium now and then under load; the export is unaffected, the noise would reach the book
logging.getLogger("choreographer").setLevel(logging.CRITICAL)

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
DEFER_ENV = "MACM_DEFER_FIGURE_EXPORT"  # set (to 1) by ``macm reproduce`` for the notebooks it runs
PENDING_DIR = ".pending"
RENDER_TIMEOUT = 90.0  # seconds an image may take (kaleido's default)


def plotly_js_path() -> Path:
    """plotly.min.js as shipped inside the installed plotly package."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall plotly (make install)")
    return path


def figure_html(fig: go.Figure, name: str) -> str:
    """The figure as an HTML fragment without plotly.js, with a stable div id."""
    return fig.to_html(include_plotlyjs=False, full_html=False, div_id=f"fig-{name}",
                       config={"displaylogo": False, "responsive": True})


def show(fig: go.Figure, name: str) -> None:
    """Display a figure in a notebook as offline HTML (what the book renders)."""
    from IPython.display import HTML, display

    display(HTML(figure_html(fig, name)))


def find_chromium() -> str:
    for candidate in (os.environ.get("BROWSER_PATH"), *CHROMIUM_CANDIDATES, shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise RuntimeError(
        "static figure export needs a Chromium browser and none was found: "
        "install Debian's package (apt-get install -y chromium) or set BROWSER_PATH"
    )


def export(fig: go.Figure, name: str, out_dir: str | os.PathLike, *,
           width: int = 900, height: int = 500) -> list[Path]:
    """Write ``<out_dir>/<name>.png`` and ``.svg`` with kaleido; return their paths.

    The first export of a process starts kaleido's sync server: one headless Chromium that
    renders every later image of the process (kaleido closes it at exit).  Without it each
    image starts and stops a browser of its own.  With ``DEFER_ENV`` set the figure is left
    in ``<out_dir>/.pending/<name>.json`` for ``export_pending``, and the paths returned are
    where it will be written."""
    out = Path(out_dir)
    paths = [out / f"{name}.png", out / f"{name}.svg"]
    if os.environ.get(DEFER_ENV):
        job = out / PENDING_DIR / f"{name}.json"
        job.parent.mkdir(parents=True, exist_ok=True)
        tmp = job.with_name(f".{job.name}.tmp")
        tmp.write_text(json.dumps({"figure": fig.to_json(), "width": width, "height": height}))
        os.replace(tmp, job)
        return paths
    _render(fig, paths, width=width, height=height)
    return paths


def export_pending(out_dir: str | os.PathLike, *, timeout: float | None = RENDER_TIMEOUT) -> list[Path]:
    """Render the figures that deferred ``export`` calls left in ``<out_dir>/.pending``
    (in one process: one browser), then remove their jobs; return the files written.

    A job written again while it was being rendered (the same figure exported anew) is
    left for the next call.  ``timeout``: seconds an image may take (None: no limit; the
    browser's first start sets it for the process)."""
    import plotly.io as pio

    written = []
    for job in sorted((Path(out_dir) / PENDING_DIR).glob("*.json")):
        seen = job.stat()
        data = json.loads(job.read_text())
        out = Path(out_dir)
        paths = [out / f"{job.stem}.png", out / f"{job.stem}.svg"]
        _render(pio.from_json(data["figure"]), paths, width=data["width"], height=data["height"], timeout=timeout)
        now = job.stat()
        if (now.st_ino, now.st_mtime_ns) == (seen.st_ino, seen.st_mtime_ns):
            job.unlink()
        written += paths
    return written


@contextmanager
def exporting_in_background(out_dir: str | os.PathLike):
    """While the block runs, a watcher process at the lowest CPU priority (Linux's
    SCHED_IDLE, its browser too) renders every job that appears in ``<out_dir>/.pending``.
    At the end of the block it renders what is left and stops; a job it could not render
    stays pending (for ``export_pending``, which then raises its error).  The rendering thus
    takes the CPU time that the block leaves idle (notebooks on one core), not time of its own."""
    def lowest_priority() -> None:
        # SCHED_IDLE: runs only on a core nothing else wants; kept by every thread and child
        # (chromium sets its threads' nice values itself, so nice alone would not hold)
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except (AttributeError, OSError):  # no SCHED_IDLE (not Linux): the lowest nice value
            os.nice(19)

    watcher = subprocess.Popen([sys.executable, "-m", "macm_core.figures", str(out_dir)],
                               stdin=subprocess.PIPE, preexec_fn=lowest_priority)
    try:
        yield
    finally:
        watcher.stdin.close()  # end of input: render what is left, then stop
        watcher.wait()


def watch_pending(out_dir: str | os.PathLike, *, interval: float = 1.0) -> None:
    """Render the jobs of ``<out_dir>/.pending`` as they appear, until standard input ends
    (``exporting_in_background``); then render what is left and return.  No time limit per
    image: at idle priority an image waits for as long as the notebooks keep both cores busy."""
    written = 0
    while True:
        ended = bool(select.select([sys.stdin], [], [], interval)[0])  # readable: at end of input
        try:
            written += len(export_pending(out_dir, timeout=None))
        except Exception as err:  # noqa: BLE001 - the jobs stay pending; export_pending raises it again
            print(f"figures: the background export stopped ({type(err).__name__}: {err}); "
                  "the figures stay pending", file=sys.stderr)
            return
        if ended:
            if written:
                print(f"figures: {written} files exported in the background", file=sys.stderr)
            return


def _render(fig: go.Figure, paths: list[Path], *, width: int, height: int,
            timeout: float | None = RENDER_TIMEOUT) -> None:
    import kaleido
    import plotly.io as pio

    os.environ.setdefault("BROWSER_PATH", find_chromium())
    # the options plotly would give a browser of its own (its request headers) go to the server
    kaleido.start_sync_server(headers=pio.defaults.headers, timeout=timeout, silence_warnings=True)
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    for path in paths:
        tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        with warnings.catch_warnings():  # plotly passes those options with every image as well
            warnings.filterwarnings("ignore", message="The kopts argument is ignored if using a server")
            fig.write_image(tmp, format=path.suffix[1:], width=width, height=height)
        os.replace(tmp, path)


if __name__ == "__main__":
    watch_pending(sys.argv[1])
