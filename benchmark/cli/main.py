"""Command-line entry points: ``mia-bench`` (a Hydra application) and ``mia-report``.

    mia-bench                                  # the default benchmark: digits, MLP, no defense
    mia-bench defense=topk defense.topk.k=3    # one configuration
    mia-bench -m defense=none,weight_decay,topk  # a sweep: one MLflow parent run, a run each
    mia-bench -m hydra/launcher=joblib hydra.launcher.n_jobs=4 seed=0,1,2,3  # jobs in parallel
    mia-bench --help                           # every config group and option
    mia-report --sweep RUN_ID --out DIR        # a citable report of recorded runs (--help)

The command line is checked before Hydra runs it (:mod:`benchmark.cli.preflight`): a bad input is
refused with one line and exit status 2, before anything is trained or written. A sweep's jobs run
through :func:`benchmark.sweep.run_job` (resume, failure isolation, a closing summary).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NoReturn

import hydra
from omegaconf import DictConfig

from benchmark.cli import hydra_internals as hi
from benchmark.cli.job import run
from benchmark.cli.preflight import check_command_line
from benchmark.cli.sweep import in_sweep, run_job
from benchmark.config.compose import CONFIG_DIR
from benchmark.errors import ConfigError
from benchmark.reporting.cli import main as report


def _ui_hint(cfg: DictConfig, run_id: str | None) -> str:
    if run_id is None:
        return "tracking disabled: nothing recorded"
    # The summary's "Next:" line already says how to open the UI on this run.
    return f"MLflow run {run_id} in experiment '{cfg.tracking.experiment}'."


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def app(cfg: DictConfig) -> object:
    if in_sweep():
        return run_job(cfg)
    try:
        outcome = run(cfg)
    except ConfigError as exc:
        refuse(exc)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the job has marked its run KILLED
        print("mia-bench: interrupted; the run is marked KILLED in MLflow", file=sys.stderr)
        sys.exit(130)
    print(outcome.summary)
    if cfg.training.shard is None:  # a shard records no run
        print(outcome.spooled or _ui_hint(cfg, outcome.run_id))
    if outcome.failure:
        sys.exit(1)
    return None


def refuse(exc: ConfigError) -> NoReturn:
    """One line on stderr, exit status 2: how every bad input ends."""
    print(f"mia-bench: error: {exc}", file=sys.stderr)
    sys.exit(2)


def main(argv: Sequence[str] | None = None) -> None:
    """The ``mia-bench`` console script: check the command line, then hand it to Hydra."""
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    try:
        check_command_line(sys.argv[1:], CONFIG_DIR)
    except ConfigError as exc:
        refuse(exc)
    with hi.sweeps_checked_by_preflight():
        app()


def report_main() -> None:
    """``mia-report``: see :mod:`benchmark.reporting.cli`."""
    sys.exit(report())


if __name__ == "__main__":
    main()
