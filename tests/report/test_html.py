"""report.html: one self-contained page (figures embedded, tables sortable, nothing fetched), checked
by reading its HTML and, where the system's Chromium is installed, by opening it in that browser."""

from __future__ import annotations

import base64
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from s2s_lightning.report.build import build_report
from s2s_lightning.report.labels import DPI, MIN_FONT_PT
from s2s_lightning.report.table import fmt_score

RECORDS = Path(__file__).parents[1] / "fixtures" / "records"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Page(HTMLParser):
    """Every tag's attributes, and the page's text."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("html") / "report"
    build_report(
        RECORDS / "addition", out, command="s2s report --runs tests/fixtures/records/addition -o report"
    )
    return out


def headline_numbers(report: Path) -> list[str]:
    """The summary table's primary-metric cells as the page prints them: mean ± sd per arm."""
    summary = pd.read_csv(report / "tables" / "summary.csv")
    m = "test/exact_match"
    return [fmt_score(r[f"{m} mean"], r[f"{m} std"], int(r[f"{m} n"]), m) for _, r in summary.iterrows()]


def test_the_page_holds_everything_and_fetches_nothing(report):
    page = Page()
    page.feed((report / "report.html").read_text(encoding="utf-8"))
    images = [a["src"] for tag, a in page.tags if tag == "img"]
    figures = sorted(report.glob("figures/*.png"))
    assert len(images) == len(figures) and all(src.startswith("data:image/png;base64,") for src in images)
    assert {base64.b64decode(src.split(",", 1)[1]) for src in images} == {f.read_bytes() for f in figures}
    fetched = [
        a.get("src") or a.get("href") for tag, a in page.tags if tag in ("script", "link", "img", "iframe")
    ]
    assert all(url is None or url.startswith("data:") for url in fetched)
    csp = next(a["content"] for tag, a in page.tags if tag == "meta" and a.get("http-equiv"))
    assert csp.startswith("default-src 'none'")
    downloads = [a for tag, a in page.tags if tag == "a" and a.get("download")]
    assert {a["download"] for a in downloads} >= {"summary.csv", "summary.tex", "effects.csv"}
    tables = [tag for tag, _ in page.tags if tag == "table"]
    assert len(tables) == len(list(report.glob("tables/*.md")))
    text = " ".join(page.text)
    assert all(number in text for number in headline_numbers(report))
    toc = [a["href"] for tag, a in page.tags if tag == "a" and a.get("href", "").startswith("#")]
    assert "#findings" in toc and "#provenance" in toc


@pytest.mark.integration
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it with apt-get)")
def test_the_page_renders_offline_in_chromium_to_png_and_pdf(report, tmp_path):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto((report / "report.html").as_uri())
        page.wait_for_load_state("load")
        decoded = page.evaluate("[...document.images].map(i => i.complete && i.naturalWidth > 0)")
        tables = page.evaluate("document.querySelectorAll('table').length")
        # Each figure's smallest text (MIN_FONT_PT at DPI in the PNG) as the page shows it, in CSS px,
        # against the page's small print (the links under each table).
        shown = page.evaluate(
            f"[...document.images].map(i => i.clientWidth / i.naturalWidth * {MIN_FONT_PT} * {DPI} / 72)"
        )
        small_print = page.evaluate("parseFloat(getComputedStyle(document.querySelector('sub')).fontSize)")
        text = page.inner_text("body")
        page.screenshot(path=str(tmp_path / "page.png"), full_page=False)
        page.pdf(path=str(tmp_path / "page.pdf"))
        header = page.locator("table").first.locator("th").nth(2)  # summary: the primary metric's column
        header.click()
        column = page.evaluate(
            "[...document.querySelector('table').tBodies[0].rows].map(r => r.cells[2].innerText)"
        )
        browser.close()
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    assert decoded and all(decoded) and tables == len(list(report.glob("tables/*.md")))
    assert small_print >= 11 and min(shown) >= small_print - 0.5, (shown, small_print)
    assert all(number in text for number in headline_numbers(report))
    values = [float(c.split(" ")[0]) for c in column]
    assert values == sorted(values)  # a click sorts by value
    assert (tmp_path / "page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pdf = (tmp_path / "page.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 50_000


def test_a_report_written_before_the_page_existed_gets_one_from_its_folder(report, tmp_path):
    """`python -m s2s_lightning.report.html OUT` (how the committed Multi30k report got its page, its runs
    being gone): the same page from README.md and the files beside it."""
    from s2s_lightning.errors import S2SError
    from s2s_lightning.report.html import write_page

    old = tmp_path / "old"
    shutil.copytree(report, old)
    (old / "report.html").unlink()
    assert write_page(old).read_text() == (report / "report.html").read_text()
    with pytest.raises(S2SError, match="README.md not found: is .* a report folder"):
        write_page(tmp_path / "nothing")
