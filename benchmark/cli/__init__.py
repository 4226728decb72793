"""The command line: ``mia-bench`` (:mod:`.main`), one job (:mod:`.job`), the pre-run check of a
command line (:mod:`.preflight`, Hydra's internals behind :mod:`.hydra_internals`) and sweeps
(:mod:`.sweep`). ``mia-report`` lives with the reports (:mod:`benchmark.reporting.cli`)."""
