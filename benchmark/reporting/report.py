"""``mia-report``: citable reports from the MLflow runs of ``mia-bench`` (DESIGN.md section 2).

From an experiment, a sweep's parent run, or a list of runs, :func:`build_report` writes a folder:

* ``report.md`` and ``report.html`` (the same content; the HTML embeds every figure, so it stands
  alone): the summary table, the utility-privacy tradeoff, log-log ROC curves per configuration,
  population vs canary leakage, accountant vs empirical epsilon, per-configuration attack tables,
  and a reproducibility block (commands, git commits, resolved configs, package versions, seeds);
* ``results.csv``: one row per configuration run (:mod:`benchmark.reporting.writers`);
* ``table.tex``: the summary table for papers (``booktabs``);
* ``figures/``: the PNG files the Markdown links to.

Runs come from :mod:`~benchmark.reporting.queries`, one per configuration hash
(:func:`~benchmark.reporting.runs.merge_reruns`). Values are means over targets with 95%
bootstrap intervals over pool points, as recorded by :mod:`benchmark.tracking.record`.
"""

from __future__ import annotations

import shlex
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmark.config.schema import default_tracking_uri
from benchmark.reporting.document import Block, Figure, Heading
from benchmark.reporting.figures import figure_blocks, roc_figure
from benchmark.reporting.plots import FAMILY_STYLE
from benchmark.reporting.queries import Sweep, fetch_artifacts, open_client, select_runs, sweeps_of
from benchmark.reporting.runs import ConfigRun, label_runs, merge_reruns
from benchmark.reporting.sections import (
    audit_warnings,
    comparability_warning,
    configuration_intro,
    failures,
    header,
    reproducibility,
    summary_table,
)
from benchmark.reporting.writers import ReportFiles, write_files


def _table_order(run: ConfigRun) -> tuple[int, str, str]:
    """Families in :data:`FAMILY_STYLE` order (new families after them), then labels."""
    families = list(FAMILY_STYLE)
    known = families.index(run.family) if run.family in families else len(families)
    return (known, run.family, run.label)


def _configuration(run: ConfigRun, figures: Path, index: int) -> list[Block]:
    blocks = configuration_intro(run)
    roc = roc_figure(run, figures / f"roc-{index:02d}.png")
    if roc is not None:
        caption = f"Log-log ROC curves of {run.key} (mean TPR over targets, population points)."
        blocks.append(Figure(roc, caption))
    return blocks


def report_blocks(
    runs: Sequence[ConfigRun], figures: Path, head: Sequence[Block], sweeps: Sequence[Sweep]
) -> list[Block]:
    """The whole report; figures are drawn into ``figures``; runs carry their artifacts."""
    finished = [r for r in runs if r.finished]
    failed = [r for r in runs if not r.finished]
    blocks = [*head, *audit_warnings(finished), *comparability_warning(finished)]
    blocks += [Heading("Summary"), summary_table(finished), *figure_blocks(finished, figures)]
    blocks.append(Heading("Configurations"))
    for index, run in enumerate(finished):
        blocks += _configuration(run, figures, index)
    return blocks + failures(failed) + reproducibility(finished, failed, sweeps)


def _keyed(selected: Sequence[ConfigRun]) -> list[ConfigRun]:
    """One run per configuration, labelled and keyed (C1... in table order, F1... failed)."""
    runs = merge_reruns(selected)
    label_runs(runs)
    finished = sorted((r for r in runs if r.finished), key=_table_order)
    failed = [r for r in runs if not r.finished]
    for prefix, group in (("C", finished), ("F", failed)):
        for number, run in enumerate(group, start=1):
            run.key = f"{prefix}{number}"
    return [*finished, *failed]


def _source(experiment: str | None, sweep: str | None, run_ids: Sequence[str]) -> str:
    if experiment:
        return f"experiment `{experiment}`"
    if sweep:
        return f"sweep `{sweep}`"
    return "runs " + ", ".join(f"`{r}`" for r in run_ids)


def report_command(
    tracking_uri: str, experiment: str | None, sweep: str | None, run_ids: Sequence[str], out: Path
) -> str:
    """The ``mia-report`` command line that regenerates a report."""
    args = ["mia-report"]
    args += (
        ["--experiment", experiment]
        if experiment
        else ["--sweep", sweep]
        if sweep
        else list(run_ids)
    )
    if tracking_uri != default_tracking_uri():
        args += ["--tracking-uri", tracking_uri]
    return shlex.join([*args, "--out", str(out)])


def build_report(
    tracking_uri: str | None = None,
    experiment: str | None = None,
    sweep: str | None = None,
    run_ids: Sequence[str] = (),
    out: str | Path = "results/report",
    title: str | None = None,
    command: str | None = None,
    progress: bool = True,
) -> ReportFiles:
    """Write the report folder for the selected runs; ``command`` is printed as the way to
    regenerate it (rebuilt from the arguments when not given). ``tracking_uri`` defaults to
    :func:`default_tracking_uri`."""
    tracking_uri = tracking_uri or default_tracking_uri()
    client = open_client(tracking_uri)
    runs = _keyed(select_runs(client, experiment, sweep, run_ids))
    out = Path(out)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for stale in figures.glob("*.png"):
        stale.unlink()
    source = _source(experiment, sweep, run_ids)
    title = title or f"mia-bench report: {source.replace('`', '')}"
    command = command or report_command(tracking_uri, experiment, sweep, run_ids, out)
    sweeps = sweeps_of(client, runs)
    head = header(title, command, sweeps, f"{source} in `{tracking_uri}`", runs)
    with tempfile.TemporaryDirectory() as downloads:
        fetch_artifacts(client, runs, Path(downloads), progress)
        blocks = report_blocks(runs, figures, head, sweeps)  # reads the downloads
    summary = summary_table([r for r in runs if r.finished])
    return write_files(blocks, summary, runs, out, title)
