"""The MLflow UI's view of an experiment: where a user lands, and what the run list shows.

MLflow 3 opens in its GenAI mode and shows a fresh experiment's runs with no metric column. Two
of the UI's own mechanisms fix both, with nothing to click:

- ``workflowType=machine_learning`` in a page's URL opens the model-training mode;
- a *shared view* (the UI's "Share" of a run-list view): the experiment tag
  ``mlflow.sharedViewState.<key>`` holds the view as JSON, and ``viewStateShareKey=<key>`` in
  the URL loads it. :data:`COMPARE_VIEW` lists the configuration runs only (not the sweep
  parents or targets), strongest leakage first, with the comparison columns, and a parallel-
  coordinates chart over defense, strength and the strongest attack's TPR at 0.1% FPR (and the
  test accuracy: the price of the protection).

The JSON's fields are those the UI saves (``selectedColumns``, ``compareRunCharts``, ...);
fields left out take the UI's defaults, so a UI that drops one still loads the rest.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from benchmark.evaluation.keys import AUC, HEADLINE, strongest_key, utility_key

#: The share key: ``#/experiments/<id>/runs?viewStateShareKey=compare``.
SHARE_KEY = "compare"
SHARE_TAG = f"mlflow.sharedViewState.{SHARE_KEY}"
#: The axes every configuration run carries (:data:`benchmark.tracking.params.COMPARISON_PARAMS`).
AXES_PARAMS = ("defense", "strength")
AXES_METRICS = (strongest_key(HEADLINE), utility_key("test_acc"))
_COLUMN_METRICS = (strongest_key(HEADLINE), strongest_key(AUC), utility_key("test_acc"))
_COLUMN_PARAMS = ("defense", "strength", "defense_option", "n_models", "canaries", "data")


def _column(group: str, key: str) -> str:
    return f"{group}.`{key}`"  # the UI's column id


COMPARE_VIEW = {
    # Configuration runs only: sweep parents and target runs have no comparison params.
    "searchFilter": "params.defense_option LIKE '%'",
    "orderByKey": _column("metrics", strongest_key(HEADLINE)),
    "orderByAsc": False,
    "selectedColumns": [
        *(_column("metrics", key) for key in _COLUMN_METRICS),
        *(_column("params", key) for key in _COLUMN_PARAMS),
    ],
    # Wide enough for ``privacy/strongest/…`` to read whole (the UI's default cuts it).
    "columnWidths": {
        _column("tags", "mlflow.runName"): 300,
        **{_column("metrics", key): 250 for key in _COLUMN_METRICS},
    },
    # Charts draw every run, not the UI's default first ten (a sweep has 76).
    "runsHiddenMode": "SHOW_ALL",
    "compareRunSections": [
        {"uuid": "compare", "name": "Compare defenses", "display": True, "isReordered": False}
    ],
    "compareRunCharts": [
        {
            "uuid": "defense-parallel-coordinates",
            "type": "PARALLEL",
            "deleted": False,
            "isGenerated": False,
            "metricSectionId": "compare",
            "selectedParams": list(AXES_PARAMS),
            "selectedMetrics": list(AXES_METRICS),
        }
    ],
}

#: The experiment tags that make the UI open as above (written when the experiment is opened).
VIEW_TAGS = {SHARE_TAG: json.dumps(COMPARE_VIEW)}


def page(experiment_id: str, run_id: str | None = None, charts: bool = False) -> str:
    """The UI's fragment for the experiment's compare view, its charts, or one run's page."""
    if run_id is not None:
        return f"#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"
    query = {"viewStateShareKey": SHARE_KEY, "workflowType": "machine_learning"}
    if charts:
        query["compareRunsMode"] = "CHART"
    return f"#/experiments/{experiment_id}/runs?{urlencode(query)}"
