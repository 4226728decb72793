"""Acceptance: against an overfit model behind a label-only API, the label-only attacks beat chance
while every attack that needs probabilities says "not applicable", on screen and in MLflow."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from threadpoolctl import threadpool_limits

from benchmark.cli.job import run
from tests.attack_worlds import auc_null_sd

#: Few noisy samples and many epochs: the models memorise their training points.
OVERFIT = [
    "protocol.n_models=4",
    "data=synthetic",
    "data.n_samples=400",
    "data.n_classes=4",
    "data.n_features=20",
    "data.flip_prob=0.35",
    "training.epochs=60",
    "defense=label_only",
]


@pytest.fixture
def one_thread():
    """Tiny models: on shared cores, extra threads only contend (tens of times slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_label_only_release_leaves_label_only_attacks_that_beat_chance(
    make_config, tmp_path, one_thread
):
    outcome = run(make_config(OVERFIT, track=True), show_progress=False)
    result = outcome.result
    assert result.signals.release_kind == "label"
    assert np.all(result.signals.outputs.sum(axis=-1) == 1)  # one-hot labels only
    by_name = {a.name: a for a in result.attacks}
    for name, attack in by_name.items():
        if name.startswith("label_only"):
            assert attack.not_applicable is None
        else:
            assert "releases only 'label'" in attack.not_applicable, name
            assert f"| {name} | not applicable: " in outcome.summary
    # A chance-level attack's AUC is within 4 null sd of 1/2 for each target, so is their mean.
    for name in ("label_only", "label_only_calibrated"):
        evaluations = by_name[name].evaluations["privacy"]
        bound = 0.5 + 4 * auc_null_sd(result.signals.membership[result.targets[0]])
        assert np.mean([e.auc for e in evaluations]) > bound, name
    tags = MlflowClient(f"sqlite:///{tmp_path}/results/mlflow.db").get_run(outcome.run_id).data.tags
    assert "releases only 'label'" in tags["not_applicable/lira_online"]
    assert "not_applicable/label_only" not in tags
