"""The end-of-run summary printed on screen and saved with the run: the tables, then a bottom
line a newcomer can act on (which attack leaks most, how far above chance, how much to trust
it, what to open next)."""

from __future__ import annotations

import shlex

import numpy as np

from benchmark.config.schema import default_tracking_uri
from benchmark.evaluation.keys import (
    AUC,
    CANARY,
    DP_EPSILON,
    EPS_LB,
    HEADLINE,
    HEADLINE_FPR,
    POPULATION,
    UTILITY_METRICS,
    privacy_key,
    tpr_at,
    utility_key,
)
from benchmark.evaluation.metrics import Interval
from benchmark.experiment.results import ExperimentResult
from benchmark.tracking.ui_view import page

COLUMNS = (
    ("AUC", AUC),
    ("TPR@0.1%FPR", HEADLINE),
    ("TPR@1%FPR", tpr_at(0.01)),
    ("ε lower bound", EPS_LB),
)
#: Fewer targets than this leave a mean over few models: wide intervals, noisy low-FPR values.
FEW_TARGETS = 5
#: Fewer models than this leave LiRA and RMIA few shadows (Carlini et al. 2022 use 64+).
FEW_MODELS = 16


def format_summary(
    result: ExperimentResult,
    run_id: str | None = None,
    experiment_id: str | None = None,
    artifact_uri: str | None = None,
) -> str:
    """Markdown tables (utility; each attack's AUC and low-FPR TPRs, mean [95% CI]), then the
    bottom line; with ``run_id``, where the run and its artifacts are and the commands to look
    further (:func:`next_step`)."""
    summary = result.summary()
    lines = [_title(result), "", *_utility(result, summary)]
    groups = [POPULATION] + ([CANARY] if result.signals.canary.any() else [])
    for group in groups:
        lines += ["", *_attack_table(result, summary, group)]
    if result.dp_audit:
        lines += ["", *audit_table(result)]
    if result.extra_target is not None:
        lines += ["", *_extra_target(result.extra_target)]
    lines += [
        "",
        _interval_note(result)
        + " The epsilon lower bound is each target's 95% Clopper-Pearson bound at the threshold "
        "chosen on the other targets (benchmark/evaluation/audit.py).",
        "",
        bottom_line(result, summary),
        *_warnings(result),
    ]
    if run_id is not None:
        lines += ["", next_step(result, run_id, experiment_id, artifact_uri)]
    return "\n".join(lines)


def _interval_note(result: ExperimentResult) -> str:
    """What the intervals of the tables are (ExperimentResult.summary chooses them)."""
    if result.other_replicates:
        return (
            f"Values are means over {result.n_replicates} independent replicates (new split, "
            "membership and model seeds) of the mean over targets, with 95% Student-t intervals "
            "over the replicate means, which cover reruns of this configuration with new seeds "
            "on this dataset (benchmark/experiment/replicates.py)."
        )
    return (
        "Values are means over targets with 95% bootstrap intervals over pool points, which "
        "cover the mean's variation over reruns with new seeds and a new pool (utility and "
        "epsilon: over targets; benchmark/evaluation/intervals.py)."
    )


def _title(result: ExperimentResult) -> str:
    config = result.plan.config
    return (
        f"## {config['data']['name']} · {config['model']['name']} · "
        f"defense={'+'.join(config['defense'])} · {config['protocol']['n_models']} models, "
        f"{len(result.targets)} targets · seed {config['seed']} · "
        + (f"{result.n_replicates} replicates · " if result.other_replicates else "")
        + f"suite {config['attacks']['version']}"
        + ("" if config["attacker"]["knows_defense"] else " · naive attacker (undefended shadows)")
    )


def _utility(result: ExperimentResult, summary: dict[str, Interval]) -> list[str]:
    dp = bool(result.epsilons)
    return [
        "| utility | test acc | train acc | gap |" + (" DP ε |" if dp else ""),
        "|---|---|---|---|" + ("---|" if dp else ""),
        "| released output | "
        + " | ".join(str(summary[utility_key(k)]) for k in UTILITY_METRICS)
        + " |"
        + (f" {summary[DP_EPSILON]} |" if dp else ""),
    ]


def _attack_table(result: ExperimentResult, summary: dict[str, Interval], group: str) -> list[str]:
    title = "attack" if group == POPULATION else "attack (canaries)"
    lines = [f"| {title} | " + " | ".join(c for c, _ in COLUMNS) + " |"]
    lines.append("|---" * (len(COLUMNS) + 1) + "|")
    for attack in result.attacks:
        if attack.not_applicable:
            cells = [f"not applicable: {attack.not_applicable}"] + [""] * (len(COLUMNS) - 1)
        else:
            cells = [str(summary[privacy_key(group, attack.name, key)]) for _, key in COLUMNS]
        lines.append(f"| {attack.name} | " + " | ".join(cells) + " |")
    return lines


def audit_table(result: ExperimentResult) -> list[str]:
    """The canary audit's bounds next to the accountant's epsilon (``audit=whitebox`` or
    ``audit=blackbox``)."""
    claimed = max(result.epsilons or [float("nan")])
    lines = [
        "| DP audit (canaries) | ε lower bound | accountant ε | canaries | guesses (correct) |",
        "|---|---|---|---|---|",
    ]
    for bound in result.dp_audit:
        if bound.guesses:
            guesses = f"{bound.guesses} ({bound.correct})"
        else:  # a GDP estimate, or a one-run bound no guess count made positive
            guesses = f"μ ≥ {bound.mu_lb:.3g}" if np.isfinite(bound.mu_lb) else "–"
        flag = " **exceeds the accountant**" if bound.eps_lb > claimed + 1e-9 else ""
        lines.append(
            f"| {bound.method} | {bound.eps_lb:.3g}{flag} | {claimed:.3g} | {bound.canaries} | "
            f"{guesses} |"
        )
    confidence = result.plan.config["audit"]["confidence"]
    lines += [
        "",
        f'Each bound holds with {confidence:.0%} confidence (README, "Auditing DP-SGD with '
        'canaries"): the one-run bounds for any mechanism, the Gaussian-DP estimates where the '
        "canary statistics are Gaussian. A bound above the accountant's ε means the training "
        "does not keep its promise.",
    ]
    return lines


def _extra_target(extra: ExperimentResult) -> list[str]:
    """The checkpoint of ``protocol.target``: its own tables, apart from the targets' means."""
    summary, target = extra.summary(), extra.plan.extra_target
    n_members = int(target.members.sum()) if target is not None else 0
    path = target.path if target is not None else "?"
    head = (
        f"**Extra target** `{path}` ({n_members} members in the pool), attacked with all "
        f"{int(extra.targets[0])} models as shadows. Its own values, each with a 95% bootstrap "
        "interval over pool points; not part of the means above."
    )
    return [head, "", *_utility(extra, summary), "", *_attack_table(extra, summary, POPULATION)]


def strongest_attack(result: ExperimentResult, summary: dict[str, Interval]) -> str | None:
    """The applicable attack with the highest mean TPR at the headline FPR (ties: higher AUC)."""
    names = [a.name for a in result.attacks if a.evaluations]
    if not names:
        return None
    return max(
        names,
        key=lambda n: (
            summary[privacy_key(POPULATION, n, HEADLINE)].mean,
            summary[privacy_key(POPULATION, n, AUC)].mean,
        ),
    )


def bottom_line(result: ExperimentResult, summary: dict[str, Interval]) -> str:
    """Which attack leaks most at 0.1% FPR, how far above chance (TPR = FPR), and what it means."""
    name = strongest_attack(result, summary)
    if name is None:
        return "**Bottom line:** no attack of the suite applies to this release."
    tpr = summary[privacy_key(POPULATION, name, HEADLINE)]
    auc = summary[privacy_key(POPULATION, name, AUC)].mean
    level = f"{HEADLINE_FPR:.1%} FPR"
    head = f"**Bottom line:** the strongest attack is {name}: TPR {tpr} at {level}, AUC {auc:.3g}"
    if tpr.mean <= HEADLINE_FPR:
        return f"{head}, no better than chance (TPR = FPR): no measurable leakage at {level}."
    ratio = tpr.mean / HEADLINE_FPR
    meaning = (
        f" Flagging only 1 in {round(1 / HEADLINE_FPR):,} non-members by mistake, it finds "
        f"{tpr.mean:.1%} of the training members."
    )
    if not np.isnan(tpr.low) and tpr.low <= HEADLINE_FPR:
        return f"{head}, {ratio:.0f}x chance, but its interval reaches chance.{meaning}"
    return f"{head}, {ratio:.0f}x chance (TPR = FPR).{meaning}"


def _warnings(result: ExperimentResult) -> list[str]:
    """Why the numbers above may be weak: few non-members, targets or models."""
    signals = result.signals
    population = ~signals.canary
    non_members = min(int((~signals.membership[k] & population).sum()) for k in signals.targets)
    n_targets, n_models = len(signals.targets), result.plan.config["protocol"]["n_models"]
    found = []
    if non_members and 1 / non_members > HEADLINE_FPR:
        found.append(
            f"each target has only {non_members} non-members, so at {HEADLINE_FPR:.1%} FPR not "
            f"one false positive is allowed (one is {1 / non_members:.2%}): TPR@0.1%FPR is the "
            "TPR at zero false positives and varies a lot; a larger pool measures it properly"
        )
    if n_targets < FEW_TARGETS:
        found.append(
            f"{n_targets} target(s): the intervals over targets are wide"
            + (" (none from a single target)" if n_targets == 1 else "")
        )
    if n_models < FEW_MODELS:
        found.append(
            f"{n_models} models: shadow-model attacks (LiRA, RMIA) have at most {n_models - 1} "
            "shadows each and are weaker than with 64"
        )
    return ["", "**Caution:** " + "; ".join(found) + "."] if found else []


#: Where ``mlflow ui`` serves by default.
LOCAL_UI = "http://127.0.0.1:5000"


def ui_base(uri: str) -> tuple[str, str]:
    """How to open the UI on tracking store ``uri`` (a command, or nothing for a server), and
    the UI's address."""
    if uri.startswith(("http://", "https://")):
        return "", uri.rstrip("/")
    return f"`mlflow ui --backend-store-uri {uri}`, then ", LOCAL_UI


def ui_hint(uri: str, experiment_id: str | None = None) -> str:
    """How to open the UI, on the experiment's compare view when its id is known."""
    start, base = ui_base(uri)
    where = f"{base}/{page(experiment_id)}" if experiment_id is not None else base
    return f"Compare the runs in the MLflow UI: {start.replace('`', '')}open {where}"


def next_step(
    result: ExperimentResult,
    run_id: str,
    experiment_id: str | None = None,
    artifact_uri: str | None = None,
) -> str:
    """Where the run is (the UI's URL of its page and of the experiment's compare view), where
    its artifacts are, and the command that writes its report."""
    uri = (result.plan.config.get("tracking") or {}).get("uri") or default_tracking_uri()
    report = ["mia-report", run_id, "--out", f"results/report-{run_id[:8]}"]
    if uri != default_tracking_uri():
        report[2:2] = ["--tracking-uri", uri]
    start, base = ui_base(uri)
    lines = [f"**Next:** run {run_id}"]
    if experiment_id is not None:
        lines += [
            f"- in the MLflow UI: {start}open {base}/{page(experiment_id, run_id)}",
            f"- beside the experiment's other runs: {base}/{page(experiment_id)}",
        ]
    else:
        lines.append(f"- in the MLflow UI: {start}open {base}")
    files = "summary.md, roc.png, scores.npz, signals.npz, metrics.csv"
    where = artifact_uri or "on the run page, Artifacts tab"
    lines += [f"- its artifacts ({files}): {where}", f"- its full report: `{shlex.join(report)}`"]
    return "\n".join(lines)
