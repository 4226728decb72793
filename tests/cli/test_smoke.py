from benchmark.cli.job import run
from tests.conftest import FAST


def test_fast_configuration_runs_end_to_end(make_config):
    outcome = run(make_config(FAST), show_progress=False)
    assert outcome.failure is None
    summary = outcome.result.summary()
    assert 0.0 <= summary["utility/test_acc"].mean <= 1.0
    assert "privacy/lira_online/auc" in summary
