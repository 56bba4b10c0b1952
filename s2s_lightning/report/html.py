"""`report.html`: the report's README as one self-contained web page, for clusters without internet,
mail and slides. Markdown becomes HTML with Python-Markdown (tables, table of contents); every figure is
embedded as a data URI, each table's CSV, LaTeX and each figure's PDF as a download link of the same
kind, so nothing lies beside the file and nothing is fetched (a Content-Security-Policy forbids it).
A few lines of inline script sort a table by the column clicked; without script the page reads the
same. Print styles give a readable PDF from the browser.
"""

from __future__ import annotations

import base64
import html
import math
import re
import struct
import sys
from pathlib import Path

import markdown

from ..errors import S2SError
from ..records import atomic_write_text
from .labels import DPI, MIN_FONT_PT

MIME = {".png": "image/png", ".pdf": "application/pdf", ".csv": "text/csv", ".tex": "application/x-tex"}
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; color: #1a1a1a; max-width: 1100px; margin: 2em auto;
  padding: 0 1em; }
h1 { font-size: 1.7em; margin-bottom: .3em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
nav.toc { background: #f6f8fa; border: 1px solid #e1e4e8; padding: .5em 1.2em; margin: 1em 0; }
nav.toc ol { margin: .3em 0; padding-left: 1.2em; } nav.toc a { text-decoration: none; }
table { border-collapse: collapse; margin: .6em 0 1.4em; font-size: .9em; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: .25em .6em; } th { background: #f6f8fa; }
tr:nth-child(even) td { background: #fbfbfb; } th.sortable { cursor: pointer; }
img { max-width: 100%; height: auto; } p.figure { overflow-x: auto; } p.figure img { max-width: none; }
sub { font-size: 12px; } pre { background: #f6f8fa; padding: .6em; overflow-x: auto; }
code { font-size: .92em; } sub a { color: #57606a; }
@media print {
  body { max-width: none; margin: 0; font-size: 10.5pt; } nav.toc { display: none; } a { color: inherit; }
  h2 { break-after: avoid; } table, img, figure { break-inside: avoid; } table { display: table; }
  p.figure img { max-width: 100%; width: auto !important; }
  pre { white-space: pre-wrap; word-break: break-all; }
}
"""

# Click a header to sort its table (numbers by value: "0.984 ± 0.008" sorts as 0.984), again to reverse.
SCRIPT = r"""
document.querySelectorAll("table").forEach(t => t.querySelectorAll("th").forEach((th, i) => {
  th.classList.add("sortable"); th.title = "sort by this column";
  th.onclick = () => {
    const rows = [...t.tBodies[0].rows], up = th.dataset.up !== "1"; th.dataset.up = up ? "1" : "0";
    const key = r => { const s = r.cells[i].innerText.replace("−", "-");
      const m = s.match(/^[^\d+-]{0,2}([+-]?\d[\d,]*\.?\d*)/);
      return m ? parseFloat(m[1].replace(/,/g, "")) : s; };
    rows.sort((a, b) => { const x = key(a), y = key(b); return (x > y) - (x < y); });
    (up ? rows : rows.reverse()).forEach(r => t.tBodies[0].appendChild(r));
  };
}));
"""


def _data_uri(path: Path) -> str:
    return f"data:{MIME[path.suffix]};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _embed(text: str, out_dir: Path) -> tuple[str, dict[str, str]]:
    """Replace links to the report's own figures/ and tables/ files with data URIs; returns the text and,
    per data URI, the file name its download link should carry."""
    names: dict[str, str] = {}

    def swap(match: re.Match) -> str:
        path = out_dir / match.group(2)
        if not path.is_file() or path.suffix not in MIME:
            return match.group(0)
        uri = _data_uri(path)
        names[uri] = path.name
        return f"{match.group(1)}({uri})"

    return re.sub(r"(\]|!\[[^\]]*\])\(((?:figures|tables)/[^)\s]+)\)", swap, text), names


SMALL_PRINT_PX = 12  # the page's smallest text (the CSV/LaTeX links under each table)


def _sized_figures(body: str) -> str:
    """Every figure at a width where its smallest text (MIN_FONT_PT at DPI) is as large as the page's
    small print: wide figures keep that size and scroll sideways instead of shrinking (the two-panel
    PCA figure's labels were ~6 px)."""

    def size(match: re.Match) -> str:
        png = base64.b64decode(match.group(2)[:64])  # the header: width at bytes 16-20 (IHDR)
        inches = struct.unpack(">I", png[16:20])[0] / DPI
        width = math.ceil(inches * SMALL_PRINT_PX * 72 / MIN_FONT_PT)
        return f'<p class="figure"><img{match.group(1)} style="width: {width}px" /></p>'

    return re.sub(r'<p><img([^>]*src="data:image/png;base64,([^"]+)"[^>]*?)\s*/?></p>', size, body)


def _toc(body: str) -> str:
    items = re.findall(r'<h2 id="([^"]+)">(.*?)</h2>', body)
    links = "".join(f'<li><a href="#{anchor}">{title}</a></li>' for anchor, title in items)
    return f'<nav class="toc"><strong>Contents</strong><ol>{links}</ol></nav>' if links else ""


def render_html(readme: str, out_dir: Path) -> str:
    """The report page from the README's Markdown and the files beside it in `out_dir`."""
    text, names = _embed(readme, Path(out_dir))
    body = markdown.markdown(text, extensions=["tables", "fenced_code", "toc"], output_format="html")
    body = _sized_figures(body)
    for uri, name in names.items():  # data: links download under their file's name (browsers open none)
        body = body.replace(f'href="{uri}"', f'href="{uri}" download="{html.escape(name)}"')
    title = re.search(r"<h1[^>]*>(.*?)</h1>", body)
    head, _, rest = body.partition("</h1>")
    body = f"{head}</h1>{_toc(body)}{rest}" if title else _toc(body) + body
    page_title = re.sub(r"<[^>]+>", "", title.group(1)) if title else "Report"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{page_title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n"
        f"<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )


def write_page(out_dir: Path) -> Path:
    """OUT/report.html from OUT/README.md and the files beside it (a report written before report.html
    existed gets its page this way: `python -m s2s_lightning.report.html OUT`)."""
    out_dir = Path(out_dir)
    readme = out_dir / "README.md"
    if not readme.is_file():
        raise S2SError(f"{readme} not found: is {out_dir} a report folder written by s2s report?")
    page = out_dir / "report.html"
    atomic_write_text(page, render_html(readme.read_text(encoding="utf-8"), out_dir))
    return page


if __name__ == "__main__":
    for folder in sys.argv[1:]:
        print(f"wrote {write_page(Path(folder))}")
