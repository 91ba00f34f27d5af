"""Static figure export: kaleido drives one Chromium per process for every image."""
import struct

import plotly.graph_objects as go

from macm_core import figures


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])  # the IHDR chunk: width, height


def test_export_writes_png_and_svg_through_one_browser(tmp_path):
    import kaleido

    first = go.Figure(go.Bar(x=["hand", "foot"], y=[3, 1]))
    second = go.Figure(go.Scatter(x=[0, 1, 2], y=[2, 0, 1]), layout_title_text="left wrist")
    png, svg = figures.export(first, "first", tmp_path, width=300, height=200)
    assert kaleido._global_server.is_running()  # the browser stays up for the next figure
    assert png_size(png) == (300, 200)
    assert svg.read_text().lstrip().startswith("<svg") and "hand" in svg.read_text()
    png2, svg2 = figures.export(second, "second", tmp_path, width=320, height=240)
    assert png_size(png2) == (320, 240) and "left wrist" in svg2.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.png", "first.svg", "second.png", "second.svg"]


def test_deferred_exports_are_rendered_at_the_end(tmp_path, monkeypatch):
    """Under ``macm reproduce`` a notebook only leaves its figures; ``export_pending``
    renders them (same sizes, same content) and removes the jobs."""
    monkeypatch.setenv(figures.DEFER_ENV, "1")
    fig = go.Figure(go.Bar(x=["left hand", "right foot"], y=[3, 1]), layout_title_text="deferred")
    png, svg = figures.export(fig, "later", tmp_path, width=310, height=210)
    assert not png.exists() and not svg.exists()
    assert [p.name for p in (tmp_path / figures.PENDING_DIR).iterdir()] == ["later.json"]
    monkeypatch.delenv(figures.DEFER_ENV)
    assert figures.export_pending(tmp_path) == [png, svg]
    assert png_size(png) == (310, 210) and "deferred" in svg.read_text() and "right foot" in svg.read_text()
    assert list((tmp_path / figures.PENDING_DIR).iterdir()) == []
    assert figures.export_pending(tmp_path) == [] and figures.export_pending(tmp_path / "none") == []


def test_deferred_figures_are_exported_in_the_background_while_the_block_runs(tmp_path, monkeypatch):
    """``macm reproduce`` runs the notebooks inside ``exporting_in_background``: a job left
    by a notebook is rendered while the next one runs, and the jobs left when the block
    ends are rendered before it returns; nothing stays pending."""
    import time

    monkeypatch.setenv(figures.DEFER_ENV, "1")
    with figures.exporting_in_background(tmp_path):
        png, svg = figures.export(go.Figure(go.Bar(x=["hand"], y=[1]), layout_title_text="during"),
                                  "during", tmp_path, width=300, height=200)
        deadline = time.monotonic() + 120
        while not (png.exists() and svg.exists()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert png_size(png) == (300, 200) and "during" in svg.read_text()
        png2, svg2 = figures.export(go.Figure(go.Scatter(x=[0, 1], y=[1, 0]), layout_title_text="last"),
                                    "last", tmp_path, width=320, height=240)
    assert png_size(png2) == (320, 240) and "last" in svg2.read_text()
    assert list((tmp_path / figures.PENDING_DIR).iterdir()) == []
