"""Rendering shared by every report: figures, HTML pages, Markdown tables, RGB composites."""

from hpa_classify.render.composite import composite_rgb, green_view, mosaic, stretch
from hpa_classify.render.figures import DPI, new_figure, save_figure
from hpa_classify.render.html import figure_html, format_value, html_document, html_table
from hpa_classify.render.tables import markdown_table

__all__ = [
    "DPI",
    "composite_rgb",
    "figure_html",
    "format_value",
    "green_view",
    "html_document",
    "html_table",
    "markdown_table",
    "mosaic",
    "new_figure",
    "save_figure",
    "stretch",
]
