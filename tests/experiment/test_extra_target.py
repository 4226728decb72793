"""An already-trained model as an extra target (issue 14 item 4, ``protocol.target``).

A checkpoint trained by the harness's own recipe (``train()`` on a membership row the ``K``
models do not use) must report what the harness's own targets report, within their intervals;
the same checkpoint scored against rows it never trained on must be at chance (so the dataset
rows really are mapped onto the pool); the configuration's own means must not move; and every
bad input is refused in one line naming its key, before anything trains.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from benchmark.cli.job import RunOutcome, run
from benchmark.errors import ConfigError
from benchmark.evaluation.keys import privacy_key
from benchmark.experiment.execute import execute
from benchmark.experiment.plan import prepare
from benchmark.models.base import build_model
from benchmark.protocol.membership import Membership
from benchmark.training.engines import train
from tests.conftest import FAST, compose_config, only_attacks

#: Small but leaky (few points per class, label noise): the AUCs are well above chance, so a
#: checkpoint scored on the wrong rows could not pass for one scored on its own.
LEAKY = [
    "protocol.n_models=4",
    "training.epochs=10",
    "data=synthetic",
    "data.n_samples=400",
    "data.n_classes=10",
    "data.n_features=20",
    "data.flip_prob=0.3",
    # The attacks of the acceptance (LOSS, LiRA online, RMIA): the others cost time here.
    *only_attacks("loss", "lira_online", "rmia"),
]
ATTACKS = ("loss", "lira_online", "rmia")


@dataclass
class Checkpoint:
    """A model trained outside the configuration's ``K``, saved as a user would save it."""

    state: Path
    members: Path
    #: The same model scored against the other half of the pool (rows it never saw).
    wrong_members: Path

    def overrides(self, members: Path | None = None) -> list[str]:
        return [
            f"protocol.target.checkpoint={self.state}",
            f"protocol.target.members={members or self.members}",
        ]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Checkpoint:
    folder = tmp_path_factory.mktemp("checkpoint")
    plan = prepare(compose_config(LEAKY), show_progress=False)
    n = len(plan.pool)
    row = np.zeros(n, dtype=bool)
    row[np.random.default_rng(2024).choice(n, size=n // 2, replace=False)] = True
    no_canary, first = np.zeros(n, dtype=bool), np.zeros(1, dtype=np.int64)
    own = Membership(matrix=row[None], canary=no_canary, seeds=np.array([99]), targets=first)
    models = train(plan.recipe, plan.pool, own, progress=False)
    torch.save(models.modules[0].state_dict(), folder / "model.pt")
    # Dataset rows, as the user knows them; the pool is shuffled, so pool order would not do.
    np.save(folder / "rows.npy", plan.pool.rows[row])
    np.savetxt(folder / "other.txt", plan.pool.rows[~row], fmt="%d")
    return Checkpoint(folder / "model.pt", folder / "rows.npy", folder / "other.txt")


@pytest.fixture(scope="module")
def tracked(
    checkpoint: Checkpoint, tmp_path_factory: pytest.TempPathFactory, empty_mlflow_db: Path
) -> tuple[RunOutcome, MlflowClient]:
    """The configuration with the checkpoint, run and recorded as ``mia-bench`` does."""
    store = tmp_path_factory.mktemp("results")
    shutil.copy(empty_mlflow_db, store / "mlflow.db")
    outcome = run(compose_config([*LEAKY, *checkpoint.overrides()], store), show_progress=False)
    return outcome, MlflowClient(tracking_uri=f"sqlite:///{store}/mlflow.db")


@pytest.mark.slow
def test_checkpoint_reports_what_the_harness_targets_report(tracked) -> None:
    result = tracked[0].result
    extra = result.extra_target
    assert extra is not None and len(extra.targets) == 1
    assert extra.signals.membership.shape[0] == 5  # the checkpoint beside all 4 shadows
    ours, theirs = result.summary(), extra.summary()
    for attack in ATTACKS:
        key = privacy_key("privacy", attack, "auc")
        target, checkpoint = ours[key], theirs[key]
        assert target.low > 0.6, (key, target)  # the setting leaks: the comparison has power
        assert checkpoint.low <= target.high and target.low <= checkpoint.high, (key, ours, theirs)
        assert checkpoint.low > 0.5, (key, checkpoint)


@pytest.mark.slow
def test_rows_it_never_trained_on_are_at_chance(checkpoint: Checkpoint) -> None:
    """Scored against rows it never saw, the checkpoint is at chance; and a release-time defense
    (rounding) applies to its outputs as to the targets'."""
    overrides = [*LEAKY, *checkpoint.overrides(checkpoint.wrong_members), "defense=rounding"]
    extra = execute(prepare(compose_config(overrides), show_progress=False)).extra_target
    assert extra is not None
    released = extra.signals.outputs[int(extra.targets[0])] * 100
    assert np.allclose(released, np.round(released), atol=1e-3)  # 2 decimals, as the targets'
    for attack in ATTACKS:
        # Its members are now the points it never saw: at best chance, below it in fact.
        assert extra.summary()[privacy_key("privacy", attack, "auc")].low < 0.5


@pytest.mark.slow
def test_its_own_target_run_is_apart_from_the_configuration(tracked) -> None:
    outcome, client = tracked
    result = outcome.result
    assert "**Extra target**" in outcome.summary
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    child = next(r for r in runs if r.data.params.get("target") == "checkpoint")
    assert child.data.tags["mlflow.parentRunId"] == outcome.run_id
    assert child.data.params["n_members"] == str(len(result.plan.pool) // 2)
    key = privacy_key("privacy", "rmia", "auc")
    assert child.data.metrics[key] == result.extra_target.summary()[key].mean
    assert f"{key}_ci_low" in child.data.metrics
    # The configuration's means are those of its K targets alone.
    parent = next(r for r in runs if r.info.run_id == outcome.run_id)
    assert parent.data.metrics[key] == np.mean([m[key] for m in result.per_target])
    assert len([r for r in runs if r.data.params.get("target", "").isdigit()]) == 4


class Explodes:
    """A pickle that would create a file when unpickled: weights_only must never run it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.fixture(scope="module")
def fast() -> DictConfig:
    return compose_config(FAST)


@pytest.fixture(scope="module")
def files(fast: DictConfig, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every file a refusal test needs, for the FAST configuration (synthetic, 20 features)."""
    tmp_path = tmp_path_factory.mktemp("files")
    plan = prepare(fast, show_progress=False)
    good = build_model("mlp", plan.pool.input_shape, plan.pool.num_classes)
    paths = {name: tmp_path / name for name in ("model.pt", "rows.npy")}
    torch.save(good.state_dict(), paths["model.pt"])
    np.save(paths["rows.npy"], plan.pool.rows[: len(plan.pool) // 2])
    narrow = build_model("mlp", plan.pool.input_shape, plan.pool.num_classes, hidden=[8])
    torch.save(narrow.state_dict(), tmp_path / "narrow.pt")
    torch.save({**good.state_dict(), "extra.weight": torch.zeros(1)}, tmp_path / "extra.pt")
    torch.save(good, tmp_path / "module.pt")  # a pickled module: code, not a state dict
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    torch.save(Explodes(tmp_path / "exploded"), tmp_path / "evil.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    np.save(tmp_path / "test_rows.npy", plan.pool.test_rows[:3])
    np.save(tmp_path / "far.npy", np.array([0, 10_000]))
    np.save(tmp_path / "mask.npy", np.ones(7, dtype=bool))
    np.save(tmp_path / "fractions.npy", np.array([0.5, 1.5]))
    np.save(tmp_path / "all.npy", plan.pool.rows)
    return {p.name: p for p in tmp_path.iterdir()}


def refusal(fast: DictConfig, files: dict[str, Path], *overrides: str) -> str:
    """The one-line refusal of FAST with ``overrides`` (file names resolved in ``files``)."""
    cfg = fast.copy()
    for key, value in (override.split("=", 1) for override in overrides):
        OmegaConf.update(cfg, key, str(files[value]) if value in files else yaml.safe_load(value))
    with pytest.raises(ConfigError) as refused:
        prepare(cfg, show_progress=False)
    message = str(refused.value)
    assert "\n" not in message
    return message


CKPT, ROWS = "protocol.target.checkpoint", "protocol.target.members"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ([f"{CKPT}=absent.pt", f"{ROWS}=rows.npy"], f"{CKPT}=absent.pt: no such file"),
        ([f"{CKPT}=text.pt", f"{ROWS}=rows.npy"], "weights_only=True"),
        ([f"{CKPT}=module.pt", f"{ROWS}=rows.npy"], "weights_only=True"),
        ([f"{CKPT}=tensor.pt", f"{ROWS}=rows.npy"], "not a state dict of tensors"),
        ([f"{CKPT}=narrow.pt", f"{ROWS}=rows.npy"], "is [8, 20] in the file but [256, 20]"),
        ([f"{CKPT}=extra.pt", f"{ROWS}=rows.npy"], "the file has tensor 'extra.weight'"),
        ([f"{CKPT}=model.pt"], f"{CKPT} and {ROWS} go together"),
        ([f"{CKPT}=model.pt", f"{ROWS}=rows.npy", "protocol.canaries=4"], "protocol.canaries=0"),
        ([f"{CKPT}=model.pt", f"{ROWS}=absent.npy"], f"{ROWS}=absent.npy: no such file"),
        ([f"{CKPT}=model.pt", f"{ROWS}=test_rows.npy"], "3 of its rows (e.g."),
        ([f"{CKPT}=model.pt", f"{ROWS}=far.npy"], "lists row 10000, outside the dataset's rows"),
        ([f"{CKPT}=model.pt", f"{ROWS}=mask.npy"], "boolean mask of 7 entries"),
        ([f"{CKPT}=model.pt", f"{ROWS}=fractions.npy"], "must hold integer row numbers"),
        ([f"{CKPT}=model.pt", f"{ROWS}=all.npy"], "needs members and non-members"),
        ([f"{CKPT}=model.pt", f"{ROWS}=text.pt"], f"{ROWS}="),
    ],
)
def test_bad_input_is_refused_in_one_line_naming_the_key(fast, files, overrides, expected) -> None:
    message = refusal(fast, files, *overrides)
    assert expected in message, message
    assert CKPT in message or ROWS in message


def test_an_unsafe_pickle_is_refused_without_running_it(fast, files) -> None:
    exploded = files["evil.pt"].parent / "exploded"
    message = refusal(fast, files, f"{CKPT}=evil.pt", f"{ROWS}=rows.npy")
    assert "weights_only=True" in message
    assert not exploded.exists()
    torch.load(files["evil.pt"], weights_only=False)  # the file really does run code otherwise
    assert exploded.exists()
