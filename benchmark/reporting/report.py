"""``mia-report``: citable reports from the MLflow runs of ``mia-bench`` (DESIGN.md section 2).

From an experiment, a sweep's parent run, or a list of runs, :func:`build_report` writes a folder:

* ``report.md`` and ``report.html`` (the same content; the HTML embeds every figure, so it stands
  alone): the summary table, the utility-privacy tradeoff, log-log ROC curves per configuration,
  population vs canary leakage, accountant vs empirical epsilon, per-configuration attack tables,
  and a reproducibility block (commands, git commits, resolved configs, package versions, seeds);
* ``results.csv``: one row per configuration run with MLflow's own column names
  (``params.*``, ``tags.*``, ``metrics.*``), metric values written with ``repr`` so that every
  float reads back exactly as MLflow stores it;
* ``table.tex``: the summary table for papers (``booktabs``);
* ``figures/``: the PNG files the Markdown links to.

Only configuration runs are reported (those with a ``config_hash`` tag); per-target child runs
and sweep parent runs are followed, never listed. Values are means over targets with 95% Student-t
intervals over targets, as recorded by :mod:`benchmark.tracking.record`.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import shlex
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
from mlflow.entities import Run
from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from tqdm.auto import tqdm

from benchmark.config.schema import TrackingConfig
from benchmark.errors import ConfigError
from benchmark.evaluation.audit import VIOLATION_TAG
from benchmark.evaluation.metrics import Interval, evaluate
from benchmark.reporting.document import (
    Block,
    Code,
    Details,
    Figure,
    Heading,
    Paragraph,
    Table,
    to_html,
    to_latex_table,
    to_markdown,
)
from benchmark.reporting.plots import (
    FAMILY_STYLE,
    TradeoffPoint,
    plot_epsilons,
    plot_population_vs_canary,
    plot_roc,
    plot_tradeoff,
)
from benchmark.reporting.provenance import reproduce_command
from benchmark.tracking.store import sqlite_path

#: Each defense's family, the marker it gets in the figures. The one place to add a defense to.
DEFENSE_FAMILIES: dict[str, str] = {
    "none": "none",
    "weight_decay": "regularisation",
    "dropout": "regularisation",
    "label_smoothing": "regularisation",
    "early_stopping": "regularisation",
    "augmentation": "regularisation",
    "mixup": "regularisation",
    "adversarial_regularisation": "regularisation",
    "relaxloss": "regularisation",
    "topk": "truncation",
    "rounding": "truncation",
    "label_only": "truncation",
    "memguard": "truncation",
    "dpsgd": "dpsgd",
}
FAMILY_ORDER = list(FAMILY_STYLE)
POPULATION, CANARY = "privacy", "privacy_canary"
#: The headline FPR level (Carlini et al. 2022) and the metric read at it.
FPR_LEVEL = 0.001
HEADLINE = "tpr_at_fpr_0.001"
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
_CI = ("_ci_low", "_ci_high")


def defense_family(defense: str) -> str:
    """The family of a configuration's ``defense`` tag (``a+b``: composed unless one family)."""
    families = {DEFENSE_FAMILIES.get(name, "other") for name in defense.split("+") if name}
    families -= {"none"}  # "none" composed with a defense is that defense
    if not families:
        return "none"
    return families.pop() if len(families) == 1 else "composed"


@dataclass
class ConfigRun:
    """One configuration run as MLflow stores it, with the label the report gives it."""

    run_id: str
    status: str
    start_time: int
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, float]
    label: str = ""
    #: Short id (C1, C2, ... in table order; F1, ... for failed runs) that figures use.
    key: str = ""
    artifacts: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def from_mlflow(cls, run: Run) -> ConfigRun:
        return cls(
            run_id=run.info.run_id,
            status=run.info.status,
            start_time=run.info.start_time or 0,
            params=dict(run.data.params),
            tags=dict(run.data.tags),
            metrics=dict(run.data.metrics),
        )

    @property
    def name(self) -> str:
        return self.tags.get("mlflow.runName", self.run_id)

    @property
    def defense(self) -> str:
        return self.tags.get("defense", "?")

    @property
    def family(self) -> str:
        return defense_family(self.defense)

    @property
    def finished(self) -> bool:
        return self.status == "FINISHED" and "failure_reason" not in self.tags

    def interval(self, key: str) -> Interval:
        nan = float("nan")
        low, high = (self.metrics.get(f"{key}{suffix}", nan) for suffix in _CI)
        return Interval(self.metrics.get(key, nan), low, high)

    def attacks(self, group: str = POPULATION) -> list[str]:
        """The attacks with metrics in ``group``, alphabetically."""
        prefix = f"{group}/"
        return sorted({k.split("/")[1] for k in self.metrics if k.startswith(prefix)})

    def strongest(self, group: str = POPULATION, metric: str = HEADLINE) -> str | None:
        """The attack with the largest mean ``metric`` (ties: larger AUC)."""
        attacks = self.attacks(group)
        if not attacks:
            return None

        def key(a: str) -> tuple[float, float]:
            return (
                self.metrics.get(f"{group}/{a}/{metric}", -math.inf),
                self.metrics.get(f"{group}/{a}/auc", -math.inf),
            )

        return max(attacks, key=key)

    def not_applicable(self) -> dict[str, str]:
        prefix = "not_applicable/"
        return {k[len(prefix) :]: v for k, v in self.tags.items() if k.startswith(prefix)}


# --- selecting runs ------------------------------------------------------------------------


def open_client(tracking_uri: str) -> MlflowClient:
    """A client on an *existing* store (MLflow would silently create an empty SQLite file)."""
    db = sqlite_path(tracking_uri)
    if db is not None and not db.exists():
        raise ConfigError(
            f"no MLflow store at {db}: run mia-bench first, or pass --tracking-uri "
            "with the store the runs were recorded in"
        )
    return MlflowClient(tracking_uri=tracking_uri)


def _search(client: MlflowClient, experiment_ids: list[str], filter_string: str = "") -> list[Run]:
    runs, token = [], None
    while True:
        page = client.search_runs(
            experiment_ids, filter_string=filter_string, max_results=1000, page_token=token
        )
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _is_config(run: Run) -> bool:
    return "config_hash" in run.data.tags


def _get_run(client: MlflowClient, run_id: str) -> Run:
    try:
        return client.get_run(run_id)
    except MlflowException:
        raise ConfigError(
            f"no run '{run_id}' in this MLflow store: check the id and --tracking-uri"
        ) from None


def _children(client: MlflowClient, parent: Run) -> list[Run]:
    query = f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    return [r for r in _search(client, [parent.info.experiment_id], query) if _is_config(r)]


def select_runs(
    client: MlflowClient,
    experiment: str | None = None,
    sweep: str | None = None,
    run_ids: Sequence[str] = (),
) -> list[ConfigRun]:
    """The configuration runs of an experiment, of a sweep (its parent run id), or given by id
    (a sweep parent's id stands for its runs), oldest first."""
    if sum(bool(x) for x in (experiment, sweep, run_ids)) != 1:
        raise ConfigError("give exactly one source: --experiment NAME, --sweep RUN_ID, or run ids")
    if experiment:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            names = sorted(e.name for e in client.search_experiments())
            raise ConfigError(f"no MLflow experiment '{experiment}': the store has {names}")
        runs = [r for r in _search(client, [found.experiment_id]) if _is_config(r)]
    elif sweep:
        runs = _children(client, _get_run(client, sweep))
        if not runs:
            raise ConfigError(
                f"run '{sweep}' has no configuration runs under it: is it a sweep's parent run?"
            )
    else:
        runs = []
        for run_id in run_ids:
            run = _get_run(client, run_id)
            if _is_config(run):
                runs.append(run)
            elif "target" in run.data.params:
                parent = run.data.tags.get("mlflow.parentRunId", "?")
                raise ConfigError(
                    f"run '{run_id}' is a per-target run: pass its configuration run '{parent}'"
                )
            else:
                children = _children(client, run)
                if not children:
                    raise ConfigError(
                        f"run '{run_id}' is neither a configuration run nor a sweep parent run"
                    )
                runs += children
    if not runs:
        raise ConfigError(f"experiment '{experiment}' has no mia-bench configuration runs yet")
    unique = {r.info.run_id: r for r in runs}
    return sorted((ConfigRun.from_mlflow(r) for r in unique.values()), key=lambda r: r.start_time)


def sweep_commands(client: MlflowClient, runs: Iterable[ConfigRun]) -> list[str]:
    """The ``mia-bench -m`` command lines of the sweeps the runs belong to (from their parents)."""
    commands = []
    for parent_id in dict.fromkeys(r.tags.get("mlflow.parentRunId") for r in runs):
        if parent_id:
            with_command = _get_run(client, parent_id).data.tags.get("command")
            if with_command:
                commands.append(with_command)
    return commands


def _varying_params(runs: Sequence[ConfigRun]) -> list[str]:
    keys = sorted({k for r in runs for k in r.params if not k.startswith("tracking.")})
    return [k for k in keys if len({r.params.get(k) for r in runs}) > 1]


def label_runs(runs: Sequence[ConfigRun]) -> None:
    """Short unique labels: the defense, then the params that vary between the runs."""
    varying = _varying_params(runs)
    for run in runs:
        parts = []
        for key in varying:
            value = run.params.get(key)
            if value is None or value == "{}":
                continue
            short = key
            for name in run.defense.split("+"):
                short = short.removeprefix(f"defense.{name}.")
            parts.append(f"{short}={value}")
        run.label = run.defense + (f" ({', '.join(parts)})" if parts else "")
    seen: dict[str, int] = {}
    for run in runs:
        seen[run.label] = seen.get(run.label, 0) + 1
    for run in runs:
        if seen[run.label] > 1:
            run.label += f" #{run.run_id[:6]}"


def pareto_front(leakage: Sequence[float], accuracy: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats on both axes (less leakage, more accuracy)."""
    front = []
    for i, (x, y) in enumerate(zip(leakage, accuracy, strict=True)):
        dominated = any(
            (x2 <= x and y2 >= y) and (x2 < x or y2 > y)
            for x2, y2 in zip(leakage, accuracy, strict=True)
        )
        if not dominated and not (math.isnan(x) or math.isnan(y)):
            front.append(i)
    return front


# --- artifacts -----------------------------------------------------------------------------

ARTIFACTS = ("scores.npz", "signals.npz", "config.yaml", "roc.png")


def fetch_artifacts(
    client: MlflowClient, runs: Sequence[ConfigRun], folder: Path, progress: bool
) -> None:
    """Download the artifacts the report uses (per-example scores, signals, config, ROC)."""
    # One bar over runs, not MLflow's own bar per file.
    os.environ.setdefault(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name, "false")
    for run in tqdm(runs, desc="artifacts", unit="run", disable=not progress):
        try:
            available = {a.path for a in client.list_artifacts(run.run_id)}
        except (MlflowException, OSError):
            continue
        for name in ARTIFACTS:
            if name in available:
                dst = folder / run.run_id
                dst.mkdir(parents=True, exist_ok=True)
                run.artifacts[name] = Path(client.download_artifacts(run.run_id, name, str(dst)))


def roc_figure(run: ConfigRun, path: Path) -> Path | None:
    """Log-log ROC curves of every attack on the population, recomputed from the run's scores
    and membership; the recorded ``roc.png`` when those are missing."""
    if "scores.npz" in run.artifacts and "signals.npz" in run.artifacts:
        with np.load(run.artifacts["signals.npz"]) as signals:
            membership, canary = signals["membership"], signals["canary"]
        population = ~canary
        with np.load(run.artifacts["scores.npz"]) as archive:
            targets = archive["targets"]
            curves = {
                name: [
                    evaluate(archive[name][i][population], membership[k][population])
                    for i, k in enumerate(targets)
                ]
                for name in archive.files
                if name != "targets"
            }
        if curves:
            return plot_roc(curves, path, title=textwrap.fill(f"{run.key}: {run.label}", 60))
    if "roc.png" in run.artifacts:
        return Path(shutil.copyfile(run.artifacts["roc.png"], path))
    return None


# --- content -------------------------------------------------------------------------------


def _sorted(runs: Sequence[ConfigRun]) -> list[ConfigRun]:
    return sorted(runs, key=lambda r: (FAMILY_ORDER.index(r.family), r.label))


def summary_table(runs: Sequence[ConfigRun]) -> Table:
    has_dp = any("dp/epsilon" in r.metrics for r in runs)
    header = ["#", "Configuration", "Family", "Test acc.", "Train-test gap", "Strongest attack"]
    header += ["TPR@0.1%FPR", "TPR@1%FPR", "AUC", "eps lower bound"] + (
        ["DP eps"] if has_dp else []
    )
    rows = []
    for run in runs:
        attack = run.strongest()
        attack_cells = (
            [
                run.interval(f"{POPULATION}/{attack}/{m}")
                for m in (HEADLINE, "tpr_at_fpr_0.01", "auc")
            ]
            if attack
            else [None] * 3
        )
        eps = [run.interval(f"{POPULATION}/{a}/eps_lb") for a in run.attacks()]
        eps_cell = max(eps, key=lambda i: i.mean, default=None)
        row = [run.key, run.label, run.family]
        row += [run.interval("utility/test_acc"), run.interval("utility/gap")]
        row += [attack or "–", *attack_cells, eps_cell]
        rows.append(row + ([run.interval("dp/epsilon")] if has_dp else []))
    caption = (
        "Mean over target models with 95% Student-t intervals over targets. Strongest attack: the "
        "suite's attack with the highest mean TPR at 0.1% FPR for that configuration. eps lower "
        "bound: the largest mean over attacks of the per-target empirical epsilon lower bound "
        "(95% Clopper-Pearson, threshold chosen on the other targets)."
    )
    return Table(header, rows, caption)


def attack_table(run: ConfigRun) -> Table:
    has_canary = bool(run.attacks(CANARY))
    header = ["Attack", "AUC", "TPR@0.1%FPR", "TPR@1%FPR", "Advantage", "eps lower bound"]
    if has_canary:
        header += ["Canary TPR@0.1%FPR", "Canary eps lower bound"]
    rows: list[list] = []
    for attack in run.attacks():
        keys = ("auc", HEADLINE, "tpr_at_fpr_0.01", "advantage", "eps_lb")
        row = [attack, *(run.interval(f"{POPULATION}/{attack}/{k}") for k in keys)]
        if has_canary:
            row += [run.interval(f"{CANARY}/{attack}/{k}") for k in (HEADLINE, "eps_lb")]
        rows.append(row)
    for attack, reason in sorted(run.not_applicable().items()):
        rows.append([attack, f"not applicable: {reason}"] + [""] * (len(header) - 2))
    return Table(header, rows)


def _audit_warnings(runs: Sequence[ConfigRun]) -> list[Block]:
    flagged = [r for r in runs if r.tags.get(VIOLATION_TAG) == "true"]
    if not flagged:
        return []
    lines = "; ".join(
        f"{r.key} {r.label}: {r.tags.get(VIOLATION_TAG + '_by', '')}" for r in flagged
    )
    return [
        Paragraph(
            "**Warning: the empirical epsilon lower bound exceeds the DP accountant's epsilon** "
            f"in {len(flagged)} configuration(s) ({lines}). Suspect a bug in training, privacy "
            "accounting or the attack before quoting these numbers."
        )
    ]


def _figures(runs: Sequence[ConfigRun], figures: Path) -> list[Block]:
    blocks: list[Block] = []
    points = [
        TradeoffPoint(
            r.key,
            r.family,
            r.interval(f"{POPULATION}/{r.strongest()}/{HEADLINE}"),
            r.interval("utility/test_acc"),
        )
        for r in runs
        if r.strongest()
    ]
    if points:
        front = pareto_front([p.leakage.mean for p in points], [p.accuracy.mean for p in points])
        path = plot_tradeoff(points, front, figures / "tradeoff.png", FPR_LEVEL)
        blocks += [
            Heading("Utility-privacy tradeoff"),
            Figure(
                path,
                "Test accuracy against the strongest attack's TPR at 0.1% FPR (log scale; zeros "
                "drawn at 1e-4), one marker per defense family, 95% intervals over targets; the "
                "dashed line is the Pareto front; the dotted line is chance (TPR = FPR). Points "
                "are labelled with their # in the summary table.",
            ),
        ]
    canary_runs = [r for r in runs if r.strongest(CANARY)]
    if canary_runs:
        path = plot_population_vs_canary(
            [r.key for r in canary_runs],
            [r.interval(f"{POPULATION}/{r.strongest()}/{HEADLINE}") for r in canary_runs],
            [r.interval(f"{CANARY}/{r.strongest(CANARY)}/{HEADLINE}") for r in canary_runs],
            figures / "canaries.png",
            FPR_LEVEL,
        )
        blocks += [
            Heading("Population vs canary leakage"),
            Figure(
                path,
                "The strongest attack's TPR at 0.1% FPR on the ordinary population and on the "
                "mislabelled canaries (Aerni et al. 2024), each group's strongest attack, with "
                "95% intervals over targets.",
            ),
        ]
    dp_runs = [r for r in runs if "dp/epsilon" in r.metrics and r.attacks()]
    if dp_runs:
        empirical = [
            max((r.interval(f"{POPULATION}/{a}/eps_lb") for a in r.attacks()), key=lambda i: i.mean)
            for r in dp_runs
        ]
        path = plot_epsilons(
            [r.key for r in dp_runs],
            [r.interval("dp/epsilon") for r in dp_runs],
            empirical,
            figures / "epsilons.png",
        )
        blocks += [
            Heading("Accountant vs empirical epsilon"),
            Figure(
                path,
                "The DP accountant's epsilon against the largest empirical lower bound over the "
                "attack suite; a sound training and audit keeps every point below the diagonal.",
            ),
        ]
    return blocks


def _configuration(run: ConfigRun, figures: Path, index: int) -> list[Block]:
    blocks: list[Block] = [
        Heading(f"{run.key}: {run.label}", 3),
        Paragraph(
            f"Run `{run.run_id}` ({run.name}) · {run.tags.get('dataset', '?')} · "
            f"{run.tags.get('model', '?')} · {run.params.get('protocol.n_models', '?')} models · "
            f"seed {run.tags.get('seed', '?')} · suite {run.tags.get('suite_version', '?')}"
        ),
        attack_table(run),
    ]
    if run.tags.get(VIOLATION_TAG) == "true":
        blocks += _audit_warnings([run])
    roc = roc_figure(run, figures / f"roc-{index:02d}.png")
    if roc is not None:
        caption = f"Log-log ROC curves of {run.key} (mean TPR over targets, population points)."
        blocks.append(Figure(roc, caption))
    return blocks


def _packages(runs: Sequence[ConfigRun]) -> Table:
    packages = sorted({k for r in runs for k in r.tags if k.startswith("version/")})
    rows = []
    for key in packages:
        versions = sorted({r.tags.get(key, "?") for r in runs})
        rows.append([key.removeprefix("version/"), ", ".join(versions)])
    return Table(["Package", "Version(s) used"], rows)


def _reproducibility(
    runs: Sequence[ConfigRun], failed: Sequence[ConfigRun], sweeps: Sequence[str]
) -> list[Block]:
    everything = [*runs, *failed]
    commits = sorted({r.tags.get("git_commit", "unknown") for r in everything})
    dirty = [r.key for r in everything if r.tags.get("git_dirty") == "true"]
    blocks: list[Block] = [
        Heading("Reproducibility"),
        Paragraph(
            f"Git commit(s): {', '.join(f'`{c}`' for c in commits)}"
            + (f". **Uncommitted changes** when running: {', '.join(dirty)}." if dirty else ".")
            + " Suite version(s): "
            + ", ".join(sorted({r.tags.get("suite_version", "?") for r in everything}))
            + ". Seeds: "
            + ", ".join(sorted({r.tags.get("seed", "?") for r in everything}, key=str))
            + "."
        ),
    ]
    if sweeps:
        blocks += [Paragraph("The runs were produced by:"), Code("\n".join(sweeps), "sh")]
    rows, configs = [], []
    for run in everything:
        command = reproduce_command(run.params, run.tags)
        state = "verified" if command.verified else "NOT verified against current conf/"
        rows.append([run.key, str(command), state, run.tags.get("config_hash", "?"), run.run_id])
        if "config.yaml" in run.artifacts:
            text = run.artifacts["config.yaml"].read_text()
        else:
            text = "\n".join(f"{k}: {v}" for k, v in sorted(run.params.items()))
        configs.append(Details(f"Resolved config: {run.key} {run.label}", [Code(text, "yaml")]))
    blocks += [
        Paragraph(
            "Each configuration's command is rebuilt from its recorded params and verified by "
            "composing it with this checkout's `conf/` (tracking settings left out: rerun into "
            "your own store). Check out the commit above first."
        ),
        Table(["#", "Command", "Check", "Config hash", "Run id"], rows),
        Heading("Package versions", 3),
        _packages(everything),
        Heading("Resolved configurations", 3),
        *configs,
    ]
    return blocks


def _failures(failed: Sequence[ConfigRun]) -> list[Block]:
    if not failed:
        return []
    rows = [[r.key, r.label, r.status, r.tags.get("failure_reason", ""), r.run_id] for r in failed]
    return [
        Heading("Failed or unfinished runs"),
        Paragraph("Left out of every table and figure above."),
        Table(["#", "Configuration", "Status", "Reason", "Run id"], rows),
    ]


# --- files ---------------------------------------------------------------------------------


def _metric_columns(runs: Sequence[ConfigRun]) -> list[str]:
    keys = {k for r in runs for k in r.metrics}
    base = sorted(
        {k.removesuffix(s) for k in keys for s in _CI if k.endswith(s)}
        | {k for k in keys if not k.endswith(_CI)}
    )
    columns = []
    for key in base:
        columns += [c for c in (key, *(key + s for s in _CI)) if c in keys]
    return columns


def write_csv(runs: Sequence[ConfigRun], path: Path) -> Path:
    """One row per configuration run; MLflow's column names; floats written with ``repr``."""
    params = list(dict.fromkeys([*KEY_PARAMS, *_varying_params(runs)]))
    tags = sorted({k for r in runs for k in r.tags if not k.startswith("mlflow.")})
    metrics = _metric_columns(runs)
    header = ["run_id", "run_name", "status", "key", "label", "family", "parent_run_id"]
    header += [f"params.{k}" for k in params] + [f"tags.{k}" for k in tags]
    header += [f"metrics.{k}" for k in metrics]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for run in runs:
            row = [run.run_id, run.name, run.status, run.key, run.label, run.family]
            row += [run.tags.get("mlflow.parentRunId", "")]
            row += [run.params.get(k, "") for k in params] + [run.tags.get(k, "") for k in tags]
            row += [repr(run.metrics[k]) if k in run.metrics else "" for k in metrics]
            writer.writerow(row)
    return path


@dataclass(frozen=True)
class ReportFiles:
    folder: Path
    markdown: Path
    html: Path
    csv: Path
    latex: Path
    figures: list[Path]


def _source(experiment: str | None, sweep: str | None, run_ids: Sequence[str]) -> str:
    if experiment:
        return f"experiment `{experiment}`"
    if sweep:
        return f"sweep `{sweep}`"
    return "runs " + ", ".join(f"`{r}`" for r in run_ids)


def _header(
    title: str, command: str, sweeps: Sequence[str], provenance: str, runs: Sequence[ConfigRun]
) -> list[Block]:
    blocks: list[Block] = [Heading(title, 1), Paragraph(f"Regenerate this report: `{command}`")]
    if sweeps:
        launched = " ; ".join(f"`{s}`" for s in sweeps)
        blocks.append(
            Paragraph(f"Its runs were produced by {launched} (rerun into a fresh experiment).")
        )
    finished = sum(r.finished for r in runs)
    blocks.append(
        Paragraph(
            f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by mia-report "
            f"{_version()} from {provenance}: {finished} finished configuration run(s), "
            f"{len(runs) - finished} failed or unfinished."
        )
    )
    return blocks


def report_blocks(
    runs: Sequence[ConfigRun], figures: Path, header: Sequence[Block], sweeps: Sequence[str]
) -> list[Block]:
    """The whole report; figures are drawn into ``figures``; runs carry their artifacts."""
    finished = [r for r in runs if r.finished]
    failed = [r for r in runs if not r.finished]
    blocks = [*header, *_audit_warnings(finished), Heading("Summary"), summary_table(finished)]
    blocks += _figures(finished, figures)
    blocks.append(Heading("Configurations"))
    for index, run in enumerate(finished):
        blocks += _configuration(run, figures, index)
    return blocks + _failures(failed) + _reproducibility(finished, failed, sweeps)


def build_report(
    tracking_uri: str = TrackingConfig.uri,
    experiment: str | None = None,
    sweep: str | None = None,
    run_ids: Sequence[str] = (),
    out: str | Path = "results/report",
    title: str | None = None,
    command: str | None = None,
    progress: bool = True,
) -> ReportFiles:
    """Write the report folder for the selected runs; ``command`` is printed as the way to
    regenerate it (rebuilt from the arguments when not given)."""
    client = open_client(tracking_uri)
    selected = select_runs(client, experiment, sweep, run_ids)
    label_runs(selected)
    finished = _sorted([r for r in selected if r.finished])
    failed = [r for r in selected if not r.finished]
    for prefix, group in (("C", finished), ("F", failed)):
        for number, run in enumerate(group, start=1):
            run.key = f"{prefix}{number}"
    runs = [*finished, *failed]
    out = Path(out)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for stale in figures.glob("*.png"):
        stale.unlink()
    source = _source(experiment, sweep, run_ids)
    title = title or f"mia-bench report: {source.replace('`', '')}"
    command = command or _report_command(tracking_uri, experiment, sweep, run_ids, out)
    sweeps = sweep_commands(client, runs)
    header = _header(title, command, sweeps, f"{source} in `{tracking_uri}`", runs)
    with tempfile.TemporaryDirectory() as downloads:
        fetch_artifacts(client, runs, Path(downloads), progress)
        blocks = report_blocks(runs, figures, header, sweeps)  # reads the downloads
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
    table = summary_table(finished)
    files.latex.write_text(to_latex_table(Table(table.header, table.rows, table.caption)))
    return files


def _walk(blocks: Sequence[Block]) -> Iterable[Block]:
    for block in blocks:
        yield block
        if isinstance(block, Details):
            yield from _walk(block.blocks)


def _version() -> str:
    try:
        return metadata.version("mia-bench")
    except metadata.PackageNotFoundError:
        return "(source checkout)"


def _report_command(
    tracking_uri: str, experiment: str | None, sweep: str | None, run_ids: Sequence[str], out: Path
) -> str:
    args = ["mia-report"]
    args += (
        ["--experiment", experiment]
        if experiment
        else ["--sweep", sweep]
        if sweep
        else list(run_ids)
    )
    if tracking_uri != TrackingConfig.uri:
        args += ["--tracking-uri", tracking_uri]
    return shlex.join([*args, "--out", str(out)])


# --- command line --------------------------------------------------------------------------

DESCRIPTION = """\
Write a citable report of mia-bench runs recorded in MLflow.

Select the runs with exactly one of --experiment NAME (every configuration run of the
experiment), --sweep RUN_ID (the configuration runs under a `mia-bench -m` sweep's parent run;
its id is in the sweep folder's mlflow_parent_run_id file and in the MLflow UI), or RUN_ID ...
(configuration runs; a sweep parent's id stands for its runs). Without any, the default
experiment 'mia-bench' is used.

The --out folder receives:
  report.md, report.html  the report (the HTML embeds its figures and stands alone)
  results.csv             one row per configuration run: params.*, tags.*, metrics.* (mean over
                          targets, with _ci_low/_ci_high: 95% Student-t interval over targets),
                          floats written exactly as MLflow stores them
  table.tex               the summary table (LaTeX, needs \\usepackage{booktabs})
  figures/                utility-privacy tradeoff (test accuracy vs the strongest attack's TPR at
                          0.1% FPR, Pareto front), log-log ROC curves per configuration, population
                          vs canary leakage, accountant vs empirical epsilon

The empirical epsilon ("eps lower bound") is a 95%-confidence lower bound on the DP epsilon from
each attack's TPR/FPR (Clopper-Pearson), its threshold chosen on the other targets; see
benchmark/audit.py. Runs whose bound exceeds the DP accountant's epsilon are flagged.
"""

EPILOG = """\
examples:
  mia-report                                      # the default experiment, into results/report
  mia-report --sweep 4f1c2e... --out results/defense_sweep
  mia-report 4f1c2e... 9ab03d... --out /tmp/two-runs
  mia-report --experiment mia-bench --tracking-uri http://mlflow.example.org:5000
"""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mia-report",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "run_ids", nargs="*", metavar="RUN_ID", help="configuration or sweep parent run ids"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--experiment", metavar="NAME", help="report every configuration run of this experiment"
    )
    source.add_argument(
        "--sweep",
        metavar="RUN_ID",
        help="report the configuration runs under this sweep parent run",
    )
    parser.add_argument(
        "--tracking-uri",
        metavar="URI",
        default=TrackingConfig.uri,
        help=f"MLflow tracking URI the runs were recorded in (default: {TrackingConfig.uri})",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        default="results/report",
        help="output folder (default: results/report)",
    )
    parser.add_argument("--title", help="report title (default: from the source)")
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar while downloading artifacts"
    )
    args = parser.parse_args(argv)
    if args.run_ids and (args.experiment or args.sweep):
        parser.error("give run ids, --experiment or --sweep, not several")
    if not (args.run_ids or args.experiment or args.sweep):
        args.experiment = TrackingConfig.experiment
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """``mia-report``: returns the exit status (2 on bad input, with one line on stderr)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    try:
        files = build_report(
            tracking_uri=args.tracking_uri,
            experiment=args.experiment,
            sweep=args.sweep,
            run_ids=args.run_ids,
            out=args.out,
            title=args.title,
            command=shlex.join(["mia-report", *argv]),
            progress=not args.no_progress,
        )
    except ConfigError as exc:
        print(f"mia-report: error: {exc}", file=sys.stderr)
        return 2
    print(f"report written to {files.folder}/ (report.md, report.html, results.csv, table.tex)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
