"""The end-of-run summary table, printed on screen and saved with the run."""

from __future__ import annotations

from benchmark.experiment.results import ExperimentResult

COLUMNS = (
    ("AUC", "auc"),
    ("TPR@0.1%FPR", "tpr_at_fpr_0.001"),
    ("TPR@1%FPR", "tpr_at_fpr_0.01"),
    ("ε lower bound", "eps_lb"),
)


def format_summary(result: ExperimentResult) -> str:
    """A Markdown table: utility, then each attack's AUC and low-FPR TPRs (mean [95% CI])."""
    config = result.plan.config
    summary = result.summary()
    n_models = config["protocol"]["n_models"]
    lines = [
        f"## {config['data']['name']} · {config['model']['name']} · "
        f"defense={'+'.join(config['defense'])} · {n_models} models, "
        f"{len(result.targets)} targets · seed {config['seed']} · "
        f"suite {config['attacks']['version']}"
        + ("" if config["attacker"]["knows_defense"] else " · naive attacker (undefended shadows)"),
        "",
        "| utility | test acc | train acc | gap |" + (" DP ε |" if result.epsilons else ""),
        "|---|---|---|---|" + ("---|" if result.epsilons else ""),
        "| released output | "
        + " | ".join(str(summary[f"utility/{k}"]) for k in ("test_acc", "train_acc", "gap"))
        + " |"
        + (f" {summary['dp/epsilon']} |" if result.epsilons else ""),
    ]
    groups = ["privacy"] + (["privacy_canary"] if result.signals.canary.any() else [])
    for group in groups:
        title = "attack" if group == "privacy" else "attack (canaries)"
        lines += ["", f"| {title} | " + " | ".join(c for c, _ in COLUMNS) + " |"]
        lines.append("|---" * (len(COLUMNS) + 1) + "|")
        for attack in result.attacks:
            if attack.not_applicable:
                cells = [f"not applicable: {attack.not_applicable}"] + [""] * (len(COLUMNS) - 1)
            else:
                cells = [str(summary[f"{group}/{attack.name}/{key}"]) for _, key in COLUMNS]
            lines.append(f"| {attack.name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Values are means over targets with 95% bootstrap intervals over pool points, which "
        "cover the mean's variation over reruns with new seeds and a new pool (utility and "
        "epsilon: over targets; benchmark/evaluation/intervals.py). The epsilon "
        "lower bound is each target's 95% Clopper-Pearson bound at the threshold chosen on the "
        "other targets (benchmark/audit.py).",
    ]
    return "\n".join(lines)
