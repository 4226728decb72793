"""A minimal document model for reports, rendered to Markdown, self-contained HTML and LaTeX.

A report is a list of blocks (:class:`Heading`, :class:`Paragraph`, :class:`Table`,
:class:`Figure`, :class:`Code`, :class:`Details`); each renderer walks the same list, so the
Markdown and HTML reports always say the same thing. Paragraph text may use two inline Markdown
forms, ``code`` and **bold**, which the HTML renderer converts. Table cells are strings or
:class:`~benchmark.metrics.Interval` values, which each format renders its own way. The HTML embeds
every figure as a base64 data URI, so the file can be mailed or archived on its own.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.evaluation.metrics import Interval

Cell = str | Interval | None


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[Cell]]
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    path: Path  # a PNG file
    caption: str


@dataclass(frozen=True)
class Code:
    text: str
    language: str = ""


@dataclass(frozen=True)
class Details:
    """A collapsed section (``<details>``): long material such as resolved configs."""

    summary: str
    blocks: Sequence[Block] = field(default_factory=list)


Block = Heading | Paragraph | Table | Figure | Code | Details


def format_interval(value: Interval) -> str:
    return "–" if math.isnan(value.mean) else str(value)


def _cell_text(cell: Cell) -> str:
    if cell is None:
        return "–"
    return format_interval(cell) if isinstance(cell, Interval) else cell


# --- Markdown ------------------------------------------------------------------------------


def _md_cell(cell: Cell) -> str:
    return _cell_text(cell).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: Sequence[Block], base: Path) -> str:
    """Markdown; figures are linked relative to ``base`` (the report's folder)."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            out.append(block.text)
        elif isinstance(block, Table):
            lines = ["| " + " | ".join(block.header) + " |", "|" + "---|" * len(block.header)]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            if block.caption:
                lines += ["", block.caption]
            out.append("\n".join(lines))
        elif isinstance(block, Figure):
            rel = block.path.relative_to(base).as_posix()
            out.append(f"![{block.caption}]({rel})\n\n*{block.caption}*")
        elif isinstance(block, Code):
            out.append(f"```{block.language}\n{block.text.rstrip()}\n```")
        elif isinstance(block, Details):
            inner = to_markdown(block.blocks, base)
            out.append(
                f"<details><summary>{html.escape(block.summary)}</summary>\n\n{inner}\n\n</details>"
            )
    return "\n\n".join(out) + "\n"


# --- HTML ----------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.45; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; }
th { border-bottom: 2px solid #444; }
code, pre { background: #f4f4f4; font-size: 0.85rem; }
pre { padding: 0.6rem; overflow-x: auto; }
figure { margin: 1rem 0; } figure img { max-width: 100%; }
figcaption { font-style: italic; font-size: 0.9rem; }
"""


def inline_html(text: str) -> str:
    """Escape ``text`` and turn its ``code`` and **bold** spans into HTML."""
    escaped = html.escape(text)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _html_blocks(blocks: Sequence[Block]) -> list[str]:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            out.append(f"<p>{inline_html(block.text)}</p>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
            body = "".join(
                "<tr>" + "".join(f"<td>{html.escape(_cell_text(c))}</td>" for c in row) + "</tr>"
                for row in block.rows
            )
            caption = f"<caption>{inline_html(block.caption)}</caption>" if block.caption else ""
            out.append(
                f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            )
        elif isinstance(block, Figure):
            alt = html.escape(block.caption, quote=True)
            out.append(
                f'<figure><img src="{data_uri(block.path)}" alt="{alt}">'
                f"<figcaption>{inline_html(block.caption)}</figcaption></figure>"
            )
        elif isinstance(block, Code):
            out.append(f"<pre><code>{html.escape(block.text.rstrip())}</code></pre>")
        elif isinstance(block, Details):
            inner = "\n".join(_html_blocks(block.blocks))
            out.append(
                f"<details><summary>{html.escape(block.summary)}</summary>\n{inner}\n</details>"
            )
    return out


def to_html(blocks: Sequence[Block], title: str) -> str:
    """A complete, self-contained HTML page (figures embedded as data URIs)."""
    body = "\n".join(_html_blocks(blocks))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


# --- LaTeX ---------------------------------------------------------------------------------

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex_cell(cell: Cell) -> str:
    if isinstance(cell, Interval):
        if math.isnan(cell.mean):
            return "--"
        if math.isnan(cell.low):
            return f"${cell.mean:.3g}$"
        return f"${cell.mean:.3g}$ {{\\scriptsize $[{cell.low:.3g}, {cell.high:.3g}]$}}"
    return "--" if cell is None else latex_escape(cell)


def to_latex_table(table: Table, label: str = "tab:mia-bench") -> str:
    """A ``booktabs`` table (``\\usepackage{booktabs}``), ready to ``\\input``."""
    lines = [
        "% Generated by mia-report; needs \\usepackage{booktabs}.",
        "\\begin{table}[t]",
        "\\centering",
        "\\small",
        f"\\begin{{tabular}}{{l{'c' * (len(table.header) - 1)}}}",
        "\\toprule",
        " & ".join(latex_escape(h) for h in table.header) + " \\\\",
        "\\midrule",
    ]
    lines += [" & ".join(_latex_cell(c) for c in row) + " \\\\" for row in table.rows]
    lines += ["\\bottomrule", "\\end{tabular}"]
    if table.caption:
        lines.append(f"\\caption{{{latex_escape(table.caption)}}}")
    lines += [f"\\label{{{label}}}", "\\end{table}"]
    return "\n".join(lines) + "\n"
