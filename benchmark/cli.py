"""Command-line entry points: ``mia-bench`` (a Hydra application) and ``mia-report``.

    mia-bench                                  # the default benchmark: digits, MLP, no defense
    mia-bench defense=topk defense.topk.k=3    # one configuration
    mia-bench -m defense=none,weight_decay,topk  # a sweep: one MLflow parent run, a run each
    mia-bench --help                           # every config group and option
    mia-report --sweep RUN_ID --out DIR        # a citable report of recorded runs (--help)
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from benchmark.config import register_configs
from benchmark.errors import ConfigError

register_configs()

#: The project's Hydra configs (the layout is a source checkout, installed editable).
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def _ui_hint(cfg: DictConfig, run_id: str | None) -> str:
    if run_id is None:
        return "tracking disabled: nothing recorded"
    return (
        f"MLflow run {run_id} in experiment '{cfg.tracking.experiment}'.\n"
        f"Open the UI with:  mlflow ui --backend-store-uri {cfg.tracking.uri}"
    )


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def app(cfg: DictConfig) -> float | None:
    from benchmark.experiment import run

    try:
        outcome = run(cfg)
    except ConfigError as exc:
        print(f"mia-bench: error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(outcome.summary)
    print(_ui_hint(cfg, outcome.run_id))
    if outcome.failure:
        sys.exit(1)
    return None


def main() -> None:
    app()


def report_main() -> None:
    """``mia-report``: see :mod:`benchmark.report`."""
    from benchmark.report import main as report

    sys.exit(report())


if __name__ == "__main__":
    main()
