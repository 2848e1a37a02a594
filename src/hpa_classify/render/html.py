"""Self-contained HTML pages: tables of escaped text, figures embedded as ``data:`` URIs.

A page made here is one file that can be mailed or attached on its own.
"""

from __future__ import annotations

import base64
import html
import math
import os
from pathlib import Path
from typing import Any

import numpy as np


def format_value(value: Any) -> str:
    """A table cell's text: 4 decimals, 3 significant digits when tiny or huge, n/a for None/NaN.

    >>> format_value(0.123456), format_value(3), format_value(None), format_value(2e-5)
    ('0.1235', '3', 'n/a', '2e-05')
    """
    if value is None:
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return "n/a"
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3g}"
        return f"{v:.4f}"
    return str(value)



def html_table(header: list[str], rows: list[list[str]], numeric: list[bool]) -> str:
    """An HTML table of escaped text; ``numeric`` columns are right-aligned."""

    def cell(tag: str, text: str, num: bool) -> str:
        cls = ' class="num"' if num else ""
        return f"<{tag}{cls}>{html.escape(text)}</{tag}>"

    head = "".join(cell("th", h, n) for h, n in zip(header, numeric, strict=True))
    body = "\n".join(
        "<tr>" + "".join(cell("td", c, n) for c, n in zip(row, numeric, strict=True)) + "</tr>"
        for row in rows
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: .3em .7em; text-align: left; }
th { background: #f4f4f4; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafafa; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
"""


def figure_html(png: str | os.PathLike[str], caption: str) -> str:
    """A ``<figure>`` embedding the PNG as a base64 ``data:`` URI, with its caption."""
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    text = html.escape(caption)
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{text}">'
        f"<figcaption>{text}</figcaption></figure>"
    )


def html_document(title: str, body: list[str], css: str = "") -> str:
    """A complete self-contained HTML page: ``title`` as heading, then the ``body`` parts.

    ``css`` is added after the report style sheet :data:`CSS`.
    """
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        f'<head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{CSS}{css}</style></head>",
        "<body>",
        f"<h1>{html.escape(title)}</h1>",
        *body,
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)

