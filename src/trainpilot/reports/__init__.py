"""Reports: per-adjustment markdown/JSON reports and the run's HTML summary.

The matplotlib-based parts (``write_summary_html``, ``plot_confusion_matrix``)
are imported on first use, so writing a markdown report does not load matplotlib.
"""
from .fmt import change_type, clean_number, fmt_value, sanitize_for_json
from .i18n import FOOTER, SECTIONS, sections_for
from .markdown import render_adjustment, write_adjustment_report

__all__ = [
    "FOOTER", "SECTIONS", "change_type", "clean_number", "fmt_value", "plot_confusion_matrix",
    "render_adjustment", "sanitize_for_json", "sections_for", "write_adjustment_report",
    "write_summary_html",
]


def __getattr__(name: str):
    if name == "write_summary_html":
        from .html import write_summary_html
        return write_summary_html
    if name == "plot_confusion_matrix":
        from .plots import plot_confusion_matrix
        return plot_confusion_matrix
    raise AttributeError(name)
