"""The end-of-sweep summary: jobs by status, models trained vs reused, one line per job."""

from __future__ import annotations

from collections import Counter
from typing import Any

STATUSES = ("finished", "skipped", "failed")


def _distinguishing(outcomes: list[dict[str, Any]]) -> list[str]:
    """Each job's overrides that differ between jobs (all of them for a one-job sweep)."""
    values: dict[str, set[str]] = {}
    for o in outcomes:
        for override in o["overrides"]:
            key, _, value = override.partition("=")
            values.setdefault(key, set()).add(value)
    varying = {key for key, seen in values.items() if len(seen) > 1}
    return [
        " ".join(x for x in o["overrides"] if x.partition("=")[0] in varying or not varying)
        for o in outcomes
    ]


def models_label(source: str | None) -> str:
    """``trained``, ``reused`` (from the model store) or ``-`` (no models: skipped, failed)."""
    if source is None:
        return "-"
    return "trained" if source == "trained" else "reused"


def format_outcomes(outcomes: list[dict[str, Any]], parent: str | None) -> str:
    """The end-of-sweep summary: a count line (jobs by status, models trained vs reused), then
    one line per job."""
    counts = Counter(o["status"] for o in outcomes)
    shown = STATUSES + (("killed",) if counts["killed"] else ())
    head = f"sweep summary: {len(outcomes)} jobs, " + ", ".join(f"{counts[s]} {s}" for s in shown)
    models = Counter(models_label(o.get("models_source")) for o in outcomes)
    head += f"; models {models['trained']} trained, {models['reused']} reused"
    lines = [head + (f" (MLflow parent run {parent})" if parent else "")]
    for o, overrides in zip(outcomes, _distinguishing(outcomes), strict=True):
        reason = f"  {o['reason']}" if o["reason"] else ""
        label = models_label(o.get("models_source"))
        lines.append(
            f"  #{o['job']:<3} {o['status']:<8}  run {o['run_id'] or '-':<32}  "
            f"models {label:<7}  {overrides}{reason}"
        )
    return "\n".join(lines)
