"""Replicate experiments within one configuration (``protocol.replicates=R``, issue 11).

Replicate 0 is the configuration's own seed (so R = 1 changes nothing), the others have seeds
derived from it; the headline is the mean over replicates with a Student-t interval over the
replicate means, and each replicate is a child run holding its own targets.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from scipy import stats

from benchmark.cli.job import run
from benchmark.config.checks import MAX_SEED
from benchmark.errors import ConfigError
from benchmark.evaluation.keys import privacy_key
from benchmark.experiment.execute import execute
from benchmark.experiment.plan import prepare
from benchmark.experiment.replicates import replicate_interval, replicate_seeds
from tests.conftest import FAST, compose_config, only_attacks

KEY = privacy_key("privacy", "loss", "auc")
#: Two attacks are enough to check the bookkeeping; the rest of the suite only costs time here.
ONLY_LOSS_AND_RMIA = only_attacks("loss", "rmia")


def test_replicate_seeds_start_with_the_seed_and_are_reproducible() -> None:
    seeds = replicate_seeds(7, 5)
    assert seeds[0] == 7 and seeds == replicate_seeds(7, 5)
    assert len(set(seeds)) == 5 and all(0 <= s <= MAX_SEED for s in seeds)
    assert replicate_seeds(7, 1) == [7]
    assert set(replicate_seeds(8, 5)[1:]).isdisjoint(seeds)  # other configurations: other seeds


def test_the_replicate_interval_covers_a_known_mean() -> None:
    """R normal replicate means of known mean: the 95% interval covers it 95% of the time and
    its half-width is t_{R-1} times the standard error."""
    rng = np.random.default_rng(11)
    true, sd, r = 0.6, 0.01, 5
    draws = rng.normal(true, sd, size=(1000, r))
    intervals = [replicate_interval(d, "privacy/loss/auc") for d in draws]
    covered = np.mean([i.low <= true <= i.high for i in intervals])
    assert 0.93 <= covered <= 0.97, covered  # binomial s.e. 0.007
    half = (intervals[0].high - intervals[0].low) / 2
    assert np.isclose(half, stats.t.ppf(0.975, r - 1) * draws[0].std(ddof=1) / np.sqrt(r))
    assert replicate_interval([0.999, 0.99, 0.9995], "privacy/loss/auc").high <= 1.0


@pytest.mark.slow
def test_replicates_are_independent_runs_summarised_over_replicates(
    tmp_path: Path, empty_mlflow_db: Path
) -> None:
    store = tmp_path / "results"
    store.mkdir()
    shutil.copy(empty_mlflow_db, store / "mlflow.db")
    small = [*FAST, "protocol.n_targets=2", *ONLY_LOSS_AND_RMIA]
    outcome = run(compose_config([*small, "protocol.replicates=3"], store), show_progress=False)
    result = outcome.result
    assert result is not None and result.n_replicates == 3
    seeds = [r.plan.seed for r in (result, *result.other_replicates)]
    assert seeds == replicate_seeds(0, 3)
    # Replicate 0 is the run without replicates, bit for bit.
    single = execute(prepare(compose_config(small), show_progress=False))
    assert result.per_target == single.per_target
    assert result.summary("points") == single.summary()
    means = [r.target_means()[KEY] for r in (result, *result.other_replicates)]
    assert len(set(means)) == 3  # new split, membership and models in each
    headline = result.summary()[KEY]
    assert headline == replicate_interval(means, KEY) and headline.mean == np.mean(means)
    assert "3 independent replicates" in outcome.summary
    client = MlflowClient(tracking_uri=f"sqlite:///{store}/mlflow.db")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    by_id = {r.info.run_id: r for r in runs}
    assert by_id[outcome.run_id].data.metrics[KEY] == headline.mean
    replicates = [r for r in runs if "replicate" in r.data.params]
    assert sorted(r.data.params["replicate_seed"] for r in replicates) == sorted(map(str, seeds))
    for replicate in replicates:
        assert replicate.data.tags["mlflow.parentRunId"] == outcome.run_id
        parent = replicate.info.run_id
        targets = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent]
        assert len(targets) == 2 and all("target" in t.data.params for t in targets)


def test_bad_replicates_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="protocol.replicates must be >= 1"):
        prepare(compose_config([*FAST, "protocol.replicates=0"]), show_progress=False)
    state, rows = tmp_path / "m.pt", tmp_path / "rows.npy"
    overrides = [f"protocol.target.checkpoint={state}", f"protocol.target.members={rows}"]
    with pytest.raises(ConfigError, match="set protocol.replicates=1"):
        prepare(compose_config([*FAST, "protocol.replicates=2", *overrides]), False)
