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
