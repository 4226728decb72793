"""The report's text and tables: header, warnings, summary, per-configuration sections,
failures and the reproducibility block (DESIGN.md section 2)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata

from benchmark.evaluation.audit import VIOLATION_TAG
from benchmark.evaluation.keys import (
    ADVANTAGE,
    AUC,
    AUDIT,
    CANARY,
    DP_EPSILON,
    EPS_LB,
    HEADLINE,
    POPULATION,
    privacy_key,
    tpr_at,
    utility_key,
)
from benchmark.reporting.document import Block, Code, Details, Heading, Paragraph, Table
from benchmark.reporting.figures import largest_eps_lb
from benchmark.reporting.provenance import reproduce_command
from benchmark.reporting.queries import Sweep
from benchmark.reporting.runs import ConfigRun

TPR_AT_1 = tpr_at(0.01)
#: Params that make two configurations' numbers incomparable when they differ.
COMPARABILITY = ("protocol.n_models", "data.name", "model.name", "attacks.version")


def _version() -> str:
    try:
        return metadata.version("mia-bench")
    except metadata.PackageNotFoundError:
        return "(source checkout)"


def header(
    title: str, command: str, sweeps: Sequence[Sweep], provenance: str, runs: Sequence[ConfigRun]
) -> list[Block]:
    """Title, how to regenerate the report, and where its runs came from."""
    blocks: list[Block] = [Heading(title, 1), Paragraph(f"Regenerate this report: `{command}`")]
    swept = sum(s.runs for s in sweeps)
    if sweeps:
        launched = " ; ".join(f"`{s.command}` ({s.runs} run(s))" for s in sweeps)
        single = len(runs) - swept
        rest = (
            f"; the other {single} are single runs (their commands are in the Reproducibility "
            "section)"
            if single > 0
            else ""
        )
        blocks.append(
            Paragraph(
                f"{swept} of the {len(runs)} configuration runs were produced by {launched}"
                f"{rest}. Rerun into a fresh experiment."
            )
        )
    finished = sum(r.finished for r in runs)
    reruns = sum(len(r.reruns) for r in runs)
    merged = f" ({reruns} identical rerun(s) merged by config hash)" if reruns else ""
    blocks.append(
        Paragraph(
            f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by mia-report "
            f"{_version()} from {provenance}: {finished} finished configuration run(s), "
            f"{len(runs) - finished} failed or unfinished{merged}."
        )
    )
    return blocks


def comparability_warning(runs: Sequence[ConfigRun]) -> list[Block]:
    """A warning when the compared configurations differ in what sets attack strength."""
    differing = []
    for param in COMPARABILITY:
        values: dict[str, list[str]] = {}
        for run in runs:
            values.setdefault(run.params.get(param, "?"), []).append(run.key)
        if len(values) > 1:
            where = "; ".join(f"{v}: {', '.join(keys)}" for v, keys in values.items())
            differing.append(f"`{param}` ({where})")
    if not differing:
        return []
    return [
        Paragraph(
            "**Warning: these configurations are not directly comparable**: they differ in "
            + ", ".join(differing)
            + ". More shadow models make LiRA and RMIA stronger, and datasets, models and suite "
            "versions change what an attack can reach: compare tables and figures within one "
            "value of each."
        )
    ]


def summary_table(runs: Sequence[ConfigRun]) -> Table:
    """One row per configuration: utility, the strongest attack's headline metrics, epsilons."""
    has_dp = any(DP_EPSILON in r.metrics for r in runs)
    header = ["#", "Configuration", "Family", "Test acc.", "Train-test gap", "Strongest attack"]
    header += ["TPR@0.1%FPR", "TPR@1%FPR", "AUC", "eps lower bound"] + (
        ["DP eps"] if has_dp else []
    )
    rows = []
    for run in runs:
        attack = run.strongest()
        metrics = (HEADLINE, TPR_AT_1, AUC)
        attack_cells = (
            [run.interval(privacy_key(POPULATION, attack, m)) for m in metrics]
            if attack
            else [None] * 3
        )
        row = [run.key, run.label, run.family]
        row += [run.interval(utility_key("test_acc")), run.interval(utility_key("gap"))]
        row += [attack or "–", *attack_cells, largest_eps_lb(run)]
        rows.append(row + ([run.interval(DP_EPSILON)] if has_dp else []))
    caption = (
        "Mean over target models with 95% bootstrap intervals over pool points (with "
        "protocol.replicates=R > 1: the mean over R replicates with a 95% Student-t interval over "
        "the replicate means). Strongest attack: the "
        "suite's attack with the highest mean TPR at 0.1% FPR for that configuration. eps lower "
        "bound: the largest mean over attacks of the per-target empirical epsilon lower bound "
        "(95% Clopper-Pearson, threshold chosen on the other targets)."
    )
    return Table(header, rows, caption)


def attack_table(run: ConfigRun) -> Table:
    """Every attack of one configuration, population and (when there are any) canaries."""
    has_canary = bool(run.attacks(CANARY))
    header = ["Attack", "AUC", "TPR@0.1%FPR", "TPR@1%FPR", "Advantage", "eps lower bound"]
    if has_canary:
        header += ["Canary TPR@0.1%FPR", "Canary eps lower bound"]
    rows: list[list] = []
    for attack in run.attacks():
        metrics = (AUC, HEADLINE, TPR_AT_1, ADVANTAGE, EPS_LB)
        row = [attack, *(run.interval(privacy_key(POPULATION, attack, m)) for m in metrics)]
        if has_canary:
            row += [run.interval(privacy_key(CANARY, attack, m)) for m in (HEADLINE, EPS_LB)]
        rows.append(row)
    for attack, reason in sorted(run.not_applicable().items()):
        rows.append([attack, f"not applicable: {reason}"] + [""] * (len(header) - 2))
    return Table(header, rows)


def canary_audit_table(run: ConfigRun) -> list[Block]:
    """The canary audit's bounds (``audit/<method>/eps_lb``) beside the accountant's epsilon."""
    methods = sorted(
        key.split("/")[1]
        for key in run.metrics
        if key.startswith(f"{AUDIT}/") and key.endswith(f"/{EPS_LB}") and key.count("/") == 2
    )
    if not methods:
        return []
    claimed = run.metrics.get(DP_EPSILON, float("nan"))
    rows = [
        [method, f"{run.metrics[f'{AUDIT}/{method}/{EPS_LB}']:.3g}", f"{claimed:.3g}"]
        for method in methods
    ]
    caption = (
        "Canary audit (audit=whitebox or audit=blackbox): each method's epsilon lower bound, "
        "with its stated "
        "confidence, beside the accountant's epsilon; a bound above it is a violation."
    )
    return [Table(["Audit method", "eps lower bound", "DP eps"], rows, caption)]


def audit_warnings(runs: Sequence[ConfigRun]) -> list[Block]:
    """The warning for configurations whose empirical bound exceeds the accountant's epsilon."""
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


def configuration_intro(run: ConfigRun) -> list[Block]:
    """A configuration's heading, run line and attack table."""
    reruns = f" · also run as {', '.join(f'`{r}`' for r in run.reruns)}" if run.reruns else ""
    return [
        Heading(f"{run.key}: {run.label}", 3),
        Paragraph(
            f"Run `{run.run_id}` ({run.name}) · {run.tags.get('dataset', '?')} · "
            f"{run.tags.get('model', '?')} · {run.params.get('protocol.n_models', '?')} models · "
            f"seed {run.tags.get('seed', '?')} · suite {run.tags.get('suite_version', '?')}"
            f"{reruns}"
        ),
        attack_table(run),
        *canary_audit_table(run),
        *audit_warnings([run]),
    ]


def failures(failed: Sequence[ConfigRun]) -> list[Block]:
    if not failed:
        return []
    rows = [[r.key, r.label, r.status, r.tags.get("failure_reason", ""), r.run_id] for r in failed]
    return [
        Heading("Failed or unfinished runs"),
        Paragraph("Left out of every table and figure above."),
        Table(["#", "Configuration", "Status", "Reason", "Run id"], rows),
    ]


def _packages(runs: Sequence[ConfigRun]) -> Table:
    packages = sorted({k for r in runs for k in r.tags if k.startswith("version/")})
    rows = []
    for key in packages:
        versions = sorted({r.tags.get(key, "?") for r in runs})
        rows.append([key.removeprefix("version/"), ", ".join(versions)])
    return Table(["Package", "Version(s) used"], rows)


def _commands(runs: Sequence[ConfigRun]) -> tuple[Table, list[Block]]:
    rows, configs = [], []
    for run in runs:
        command = reproduce_command(run.params, run.tags)
        state = "verified" if command.verified else "NOT verified against current conf/"
        rows.append([run.key, str(command), state, run.config_hash or "?", run.run_id])
        if "config.yaml" in run.artifacts:
            text = run.artifacts["config.yaml"].read_text()
        else:
            text = "\n".join(f"{k}: {v}" for k, v in sorted(run.params.items()))
        configs.append(Details(f"Resolved config: {run.key} {run.label}", [Code(text, "yaml")]))
    return Table(["#", "Command", "Check", "Config hash", "Run id"], rows), configs


def reproducibility(
    runs: Sequence[ConfigRun], failed: Sequence[ConfigRun], sweeps: Sequence[Sweep]
) -> list[Block]:
    """Commits, seeds, the sweep and per-configuration commands, packages, resolved configs."""
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
        commands = "\n".join(s.command for s in sweeps)
        blocks += [Paragraph("The sweeps among the runs were launched by:"), Code(commands, "sh")]
    table, configs = _commands(everything)
    blocks += [
        Paragraph(
            "Each configuration's command is rebuilt from its recorded params and verified by "
            "composing it with this checkout's `conf/` (tracking settings left out: rerun into "
            "your own store). Check out the commit above first."
        ),
        table,
        Heading("Package versions", 3),
        _packages(everything),
        Heading("Resolved configurations", 3),
        *configs,
    ]
    return blocks
