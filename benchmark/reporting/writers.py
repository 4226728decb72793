"""The report's files: Markdown, standalone HTML, LaTeX summary table, and the exact CSV.

``results.csv`` has one row per configuration run with MLflow's own column names
(``params.*``, ``tags.*``, ``metrics.*``), metric values written with ``repr`` so that every
float reads back exactly as MLflow stores it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmark.evaluation.keys import CI_HIGH, CI_LOW, interval_keys
from benchmark.reporting.document import (
    Block,
    Details,
    Figure,
    Table,
    to_html,
    to_latex_table,
    to_markdown,
)
from benchmark.reporting.runs import ConfigRun, varying_params
from benchmark.tracking.params import COMPARISON_PARAMS

#: Params every row of results.csv carries, besides those that vary between the runs.
KEY_PARAMS = (
    "data.name",
    "model.name",
    "protocol.n_models",
    "protocol.n_targets",
    "protocol.canaries",
    "attacker.knows_defense",
    "training.epochs",
    "attacks.version",
    "seed",
)
_CI = (CI_LOW, CI_HIGH)


@dataclass(frozen=True)
class ReportFiles:
    folder: Path
    markdown: Path
    html: Path
    csv: Path
    latex: Path
    figures: list[Path]


def _metric_columns(runs: Sequence[ConfigRun]) -> list[str]:
    """Every metric, each mean followed by its interval's bounds."""
    keys = {k for r in runs for k in r.metrics}
    base = sorted(
        {k.removesuffix(s) for k in keys for s in _CI if k.endswith(s)}
        | {k for k in keys if not k.endswith(_CI)}
    )
    columns = []
    for key in base:
        columns += [c for c in (key, *interval_keys(key)) if c in keys]
    return columns


def write_csv(runs: Sequence[ConfigRun], path: Path) -> Path:
    """One row per configuration run; MLflow's column names; floats written with ``repr``."""
    params = list(dict.fromkeys([*COMPARISON_PARAMS, *KEY_PARAMS, *varying_params(runs)]))
    tags = sorted({k for r in runs for k in r.tags if not k.startswith("mlflow.")})
    metrics = _metric_columns(runs)
    header = ["run_id", "run_name", "status", "key", "label", "family", "parent_run_id"]
    header += ["reruns"]
    header += [f"params.{k}" for k in params] + [f"tags.{k}" for k in tags]
    header += [f"metrics.{k}" for k in metrics]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for run in runs:
            row = [run.run_id, run.name, run.status, run.key, run.label, run.family]
            row += [run.tags.get("mlflow.parentRunId", ""), " ".join(run.reruns)]
            row += [run.params.get(k, "") for k in params] + [run.tags.get(k, "") for k in tags]
            row += [repr(run.metrics[k]) if k in run.metrics else "" for k in metrics]
            writer.writerow(row)
    return path


def _walk(blocks: Sequence[Block]) -> Iterable[Block]:
    for block in blocks:
        yield block
        if isinstance(block, Details):
            yield from _walk(block.blocks)


def write_files(
    blocks: Sequence[Block], summary: Table, runs: Sequence[ConfigRun], out: Path, title: str
) -> ReportFiles:
    """Write the report folder's files; ``summary`` becomes ``table.tex``."""
    files = ReportFiles(
        folder=out,
        markdown=out / "report.md",
        html=out / "report.html",
        csv=write_csv(runs, out / "results.csv"),
        latex=out / "table.tex",
        figures=[b.path for b in _walk(blocks) if isinstance(b, Figure)],
    )
    files.markdown.write_text(to_markdown(blocks, out))
    files.html.write_text(to_html(blocks, title))
    files.latex.write_text(to_latex_table(Table(summary.header, summary.rows, summary.caption)))
    return files
