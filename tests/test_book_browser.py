"""Build the book from the smoke references and look at it in headless Chromium."""
import shutil
from pathlib import Path

import pytest

from macm_core.browser import inspect_page
from macm_core.paths import project_root
from macm_core.reproduce import build_book

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    """A copy of the book's sources with the smoke-profile executed notebooks, built."""
    root = project_root()
    site = tmp_path_factory.mktemp("book")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(root / name, site / name)
    shutil.copytree(root / "book", site / "book",
                    ignore=shutil.ignore_patterns("executed", "_static"))
    (site / "book" / "executed").mkdir()
    for notebook in (root / "tests" / "notebooks").glob("*.ipynb"):
        shutil.copy(notebook, site / "book" / "executed" / notebook.name)
    index = build_book(site)
    return index.parent


def test_every_toc_chapter_is_built(built_book):
    toc = (project_root() / "_toc.yml").read_text()
    chapters = [line.split("file:")[1].strip() for line in toc.splitlines() if "file:" in line]
    assert chapters, "the table of contents lists no chapter"
    for chapter in chapters:
        assert (built_book / f"{chapter}.html").is_file(), f"{chapter} was not built"


def test_claims_page_draws_its_plotly_figures_without_console_errors(built_book, tmp_path):
    report = inspect_page(built_book, "book/executed/00_claims_map.html",
                          screenshot=tmp_path / "claims.png")
    assert report.title.startswith("The claims map")
    assert report.plotly_figures >= 3
    assert report.drawn_svgs == report.plotly_figures
    assert report.console_errors == []
    assert (tmp_path / "claims.png").stat().st_size > 10_000


def test_intro_page_has_no_console_errors(built_book):
    report = inspect_page(built_book, "book/intro.html")
    assert report.console_errors == []
