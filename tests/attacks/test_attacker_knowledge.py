"""attacker.knows_defense: the Kerckhoffs attacker (shadows trained with the defense) and the
naive one (undefended shadows on the same membership matrix, outputs through the same API)."""

from __future__ import annotations

import numpy as np
from mlflow.tracking import MlflowClient

from attacks.base import attacker_view, build_attack
from benchmark.cli.job import run
from benchmark.experiment.execute import execute
from benchmark.experiment.plan import prepare
from benchmark.experiment.results import ExperimentResult
from benchmark.signals.arrays import Signals
from tests.conftest import FAST

#: A weight decay strong enough that defended and undefended models clearly differ.
DECAY = ["defense=weight_decay", "defense.weight_decay.weight_decay=0.5"]


def executed(make_config, overrides: list[str]) -> ExperimentResult:
    return execute(prepare(make_config([*FAST, *overrides]), show_progress=False))


def scores_of(result: ExperimentResult, attack: str) -> np.ndarray:
    return next(a.scores for a in result.attacks if a.name == attack)


def test_naive_attacker_uses_undefended_shadows_on_the_same_matrix(make_config):
    naive = executed(make_config, [*DECAY, "attacker.knows_defense=false"])
    aware = executed(make_config, DECAY)
    undefended = executed(make_config, [])
    assert aware.shadow_signals is None and aware.plan.shadow_recipe is None
    assert naive.plan.shadow_recipe == undefended.plan.recipe
    # Same targets; shadows are exactly the undefended models (same matrix, same seeds).
    assert np.array_equal(naive.signals.outputs, aware.signals.outputs)
    assert np.array_equal(naive.shadow_signals.outputs, undefended.signals.outputs)
    assert np.array_equal(naive.shadow_signals.membership, naive.signals.membership)
    assert not np.allclose(naive.shadow_signals.outputs, naive.signals.outputs, atol=1e-3)
    # The attacks read those shadows: LiRA's scores change, LOSS (no shadows) does not ...
    assert not np.allclose(scores_of(naive, "lira_online"), scores_of(aware, "lira_online"))
    assert np.array_equal(scores_of(naive, "loss"), scores_of(aware, "loss"))
    # ... and equal a view built by hand from the undefended shadows.
    lira = build_attack("lira_online", {})
    k = int(naive.targets[0])
    view = attacker_view(naive.signals, k, shadow_signals=naive.shadow_signals)
    assert np.allclose(lira.score(view), scores_of(naive, "lira_online")[0])


def test_release_defenses_stay_visible_to_the_naive_attacker(make_config):
    released_only = executed(make_config, ["defense=topk", "attacker.knows_defense=false"])
    assert released_only.shadow_signals is None  # no training-time change: shadows = targets
    both = executed(make_config, ["defense=[weight_decay,topk]", "attacker.knows_defense=false"])
    shadows = both.shadow_signals
    assert shadows.release_kind == "truncated"
    assert np.all((shadows.outputs > 0).sum(axis=2) == 1)  # the shadows' outputs are top-1 too


def test_attacker_knowledge_is_recorded(make_config, tmp_path):
    cfg = make_config([*DECAY, *FAST, "attacker.knows_defense=false"], track=True)
    outcome = run(cfg, show_progress=False)
    client = MlflowClient(tracking_uri=cfg.tracking.uri)
    recorded = client.get_run(outcome.run_id).data
    assert recorded.tags["attacker_knows_defense"] == "false"
    assert recorded.params["attacker.knows_defense"] == "false"
    assert "naive attacker (undefended shadows)" in outcome.summary
    path = client.download_artifacts(outcome.run_id, "shadow_signals.npz", str(tmp_path))
    assert np.array_equal(Signals.load(path).outputs, outcome.result.shadow_signals.outputs)
