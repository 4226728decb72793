"""The empirical epsilon inside real runs: logged per target, positive on an overfit model,
and an accountant epsilon below it tagged and warned about."""

from __future__ import annotations

import pytest

from benchmark.cli import job
from benchmark.cli.job import run
from benchmark.experiment.execute import execute
from benchmark.experiment.plan import prepare
from tests.conftest import FAST

#: FAST, trained long on noisy labels: the models memorise, every attack finds signal.
OVERFIT = [
    *FAST,
    "training.epochs=30",
    "data.n_samples=300",
    "data.n_features=50",
    "data.flip_prob=0.3",
]


@pytest.fixture(scope="module")
def overfit_result():
    from tests.conftest import compose_config

    return execute(prepare(compose_config(OVERFIT), show_progress=False))


@pytest.mark.slow
def test_undefended_overfit_model_has_a_positive_bound(overfit_result):
    summary = overfit_result.summary()
    names = [a.name for a in overfit_result.attacks]
    for name in names:
        assert summary[f"privacy/{name}/eps_lb"].mean > 0
    # The best attack proves a positive epsilon on every single target.
    per_target = [overfit_result.target_metrics(i) for i in range(len(overfit_result.targets))]
    best = max(names, key=lambda n: summary[f"privacy/{n}/eps_lb"].mean)
    assert all(m[f"privacy/{best}/eps_lb"] > 0 for m in per_target)
    assert overfit_result.epsilons is None
    assert overfit_result.accountant_violations() == {}


@pytest.mark.slow
def test_bound_above_the_accountant_is_warned(overfit_result, make_config, monkeypatch):
    """An accountant that claims less than the attacks prove (epsilon 0.01) must be flagged;
    the run tag is checked on recorded runs in test_report.py."""
    overfit_result.epsilons = [0.01] * 4
    try:
        monkeypatch.setattr(job, "execute", lambda plan: overfit_result)
        with pytest.warns(UserWarning, match="exceeds the DP accountant's epsilon"):
            outcome = run(make_config(OVERFIT), show_progress=False)
        violations = overfit_result.accountant_violations()
    finally:
        overfit_result.epsilons = None
    assert "WARNING: empirical epsilon lower bound exceeds" in outcome.summary
    assert violations and all(
        targets and set(targets) <= {0, 1, 2, 3} for targets in violations.values()
    )
    assert set(violations) <= {f"privacy/{a.name}" for a in overfit_result.attacks}


@pytest.mark.slow
def test_canary_audit_bounds_are_logged_summarised_and_flagged(
    overfit_result, make_config, monkeypatch
):
    """The configuration run logs ``audit/<method>/eps_lb`` beside ``dp/epsilon``; the summary
    shows them; a bound above the accountant's epsilon is tagged as a violation."""
    from mlflow.tracking import MlflowClient

    from benchmark.evaluation.dp_audit import AuditBound

    bounds = [
        AuditBound("whitebox_runs", 0.5, 4000, guesses=40, correct=39, models=(0, 1, 2, 3)),
        AuditBound("whitebox_gdp", 60.5, 4000, mu_lb=7.5, models=(0, 1, 2, 3)),
    ]
    # An accountant epsilon above every attack's bound: only the canary audit exceeds it.
    overfit_result.dp_audit, overfit_result.epsilons = bounds, [50.0] * 4
    try:
        monkeypatch.setattr(job, "execute", lambda plan: overfit_result)
        outcome = run(make_config(OVERFIT, track=True), show_progress=False)
        violations = overfit_result.accountant_violations()
    finally:
        overfit_result.dp_audit, overfit_result.epsilons = [], None
    assert violations == {"audit/whitebox_gdp": [0, 1, 2, 3]}
    assert "| whitebox_gdp | 60.5 **exceeds the accountant** | 50 | 4000 | μ ≥ 7.5 |" in (
        outcome.summary
    )
    assert "| whitebox_runs | 0.5 | 50 | 4000 | 40 (39) |" in outcome.summary
    assert "WARNING: empirical epsilon lower bound exceeds" in outcome.summary
    config = make_config(OVERFIT, track=True)
    logged = MlflowClient(config.tracking.uri).get_run(outcome.run_id)
    assert logged.data.metrics["audit/whitebox_gdp/eps_lb"] == 60.5
    assert logged.data.metrics["audit/whitebox_gdp/mu_lb"] == 7.5
    assert logged.data.metrics["audit/whitebox_runs/eps_lb"] == 0.5
    assert logged.data.metrics["dp/epsilon"] == 50.0
    assert "audit/whitebox_gdp" in logged.data.tags["audit/eps_lb_exceeds_accountant_by"]
