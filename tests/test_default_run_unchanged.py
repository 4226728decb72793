"""The default configuration's metrics, bit for bit, as recorded before the architecture change.

``tests/fixtures/default_run_metrics.json`` holds the configuration run's metrics that ``mia-bench``
(no override) logged to MLflow at commit 12ce83c. A refactor that changes any of them changed
behaviour; a change that means to (a new interval, say) updates the file and says why.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.experiment.execute import execute
from benchmark.experiment.plan import prepare
from benchmark.tracking.record import configuration_metrics
from tests.conftest import compose_config

BASELINE = Path(__file__).parent / "fixtures" / "default_run_metrics.json"


@pytest.mark.slow
def test_the_default_run_reproduces_its_recorded_metrics_exactly():
    expected = json.loads(BASELINE.read_text())["metrics"]
    result = execute(prepare(compose_config([]), show_progress=False))
    measured = configuration_metrics(result)
    assert sorted(measured) == sorted(expected)
    different = {k: (measured[k], expected[k]) for k in expected if measured[k] != expected[k]}
    assert not different
