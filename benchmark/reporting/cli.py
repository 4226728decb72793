"""The ``mia-report`` command line: arguments, help text, exit status."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from benchmark.config.schema import TrackingConfig, default_tracking_uri
from benchmark.errors import ConfigError
from benchmark.reporting.report import build_report

DESCRIPTION = """\
Write a citable report of mia-bench runs recorded in MLflow.

Select the runs with exactly one of --experiment NAME (every configuration run of the
experiment), --sweep RUN_ID (the configuration runs under a `mia-bench -m` sweep's parent run;
its id is in the sweep folder's mlflow_parent_run_id file and in the MLflow UI), or RUN_ID ...
(configuration runs; a sweep parent's id stands for its runs). Without any, the default
experiment 'mia-bench' is used. Identical reruns (same config_hash tag) are reported once, as
the latest run; the others are listed beside it.

The --out folder receives:
  report.md, report.html  the report (the HTML embeds its figures and stands alone)
  results.csv             one row per configuration run: params.*, tags.*, metrics.* (mean over
                          targets, with _ci_low/_ci_high: 95% bootstrap interval over pool points),
                          floats written exactly as MLflow stores them
  table.tex               the summary table (LaTeX, needs \\usepackage{booktabs})
  figures/                utility-privacy tradeoff (test accuracy vs the strongest attack's TPR at
                          0.1% FPR, Pareto front), log-log ROC curves per configuration, population
                          vs canary leakage, accountant vs empirical epsilon

The empirical epsilon ("eps lower bound") is a 95%-confidence lower bound on the DP epsilon from
each attack's TPR/FPR (Clopper-Pearson), its threshold chosen on the other targets; see
benchmark/evaluation/audit.py. Runs whose bound exceeds the DP accountant's epsilon are flagged.
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
        default=default_tracking_uri(),
        help="MLflow tracking URI the runs were recorded in (default: $MLFLOW_TRACKING_URI when "
        "set, else sqlite:///results/mlflow.db; now: %(default)s)",
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
