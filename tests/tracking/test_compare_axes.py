"""The compare view's axes on every run of the standard sweep, checked without training: each
job's params as its configuration run logs them (with the Hydra choice that names its strength),
and an attack that applies to its release (so ``privacy/strongest/tpr_at_fpr_0.001`` is logged).
``python -m benchmark.bench.ui_screenshots`` runs a real reduced sweep and looks at the UI."""

from __future__ import annotations

import json

import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict, read_write

from attacks.base import build_suite
from benchmark.cli import hydra_internals as hi
from benchmark.cli.preflight import JobComposer
from benchmark.config.compose import CONFIG_DIR, to_container
from benchmark.evaluation.keys import HEADLINE, strongest_key
from benchmark.release.api import Release
from benchmark.release.kinds import RELEASE_KINDS
from benchmark.tracking.params import COMPARISON_PARAMS, run_params, strength
from benchmark.tracking.ui_view import AXES_METRICS, AXES_PARAMS, COMPARE_VIEW
from defenses.base import build_defenses
from tests.defenses.test_defense_sweep import PRESET, compose_preset, sweep_jobs


@pytest.fixture
def hydra_config():
    """Set HydraConfig as a Hydra job sees it; restored afterwards."""
    previous = HydraConfig.instance().cfg
    yield lambda cfg: HydraConfig.instance().set_config(cfg)
    HydraConfig.instance().cfg = previous


def test_every_job_of_the_standard_sweep_carries_defense_strength_and_an_applicable_attack(
    hydra_config,
):
    # The Hydra choice a job sees is its defense override (checked on one job); the jobs are
    # then composed as the preflight composes them, once per set of config files.
    one = compose_preset(["defense=strength/relaxloss_high"], hydra=True)
    assert one.hydra.runtime.choices.defense == "strength/relaxloss_high"
    jobs = sweep_jobs([])
    assert len(jobs) == 76
    composer, seen = JobComposer("config"), set()
    with hi.config_dir(CONFIG_DIR):
        for job in jobs:
            cfg = composer.job([PRESET, *(f"{k}={v}" for k, v in job.items())])
            with open_dict(one.hydra.runtime.choices), read_write(one.hydra.runtime.choices):
                one.hydra.runtime.choices.defense = job["defense"]
            hydra_config(one)
            params = run_params(to_container(cfg))
            assert all(key in params for key in COMPARISON_PARAMS), job
            option = job["defense"]
            assert params["defense_option"] == option
            preset = option.startswith("strength/")
            level = option.rsplit("_", 1)[-1] if preset else "none" if option == "none" else "other"
            assert params["strength"] == level and params["canaries"] == job["protocol.canaries"]
            kind = Release(build_defenses(cfg.defense)).kind
            needs = [a.needs for a in build_suite(cfg.attacks.suite)]
            assert any(RELEASE_KINDS.index(kind) <= RELEASE_KINDS.index(n) for n in needs), job
            seen.add((params["defense"], params["strength"]))
    assert len(seen) == 38 and ("relaxloss", "high") in seen and ("none", "none") in seen


def test_the_compare_view_shows_the_axes_every_configuration_run_has():
    assert AXES_METRICS[0] == strongest_key(HEADLINE) == "privacy/strongest/tpr_at_fpr_0.001"
    assert set(AXES_PARAMS) <= set(COMPARISON_PARAMS)
    [chart] = COMPARE_VIEW["compareRunCharts"]
    assert chart["type"] == "PARALLEL" and chart["selectedParams"] == list(AXES_PARAMS)
    columns = [c.split(".", 1)[1].strip("`") for c in COMPARE_VIEW["selectedColumns"]]
    assert set(columns) <= {*COMPARISON_PARAMS, *AXES_METRICS, strongest_key("auc")}
    json.dumps(COMPARE_VIEW)  # the experiment tag's value


@pytest.mark.parametrize(
    ("option", "level"),
    [
        ("strength/relaxloss_high", "high"),
        ("strength/adversarial_regularisation_low", "low"),
        ("[strength/dpsgd_mid,topk]", "mid"),
        ("none", "none"),
        ("topk", "other"),
    ],
)
def test_strength_is_the_preset_level(option, level):
    assert strength(option) == level
