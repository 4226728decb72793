"""The input gaps of issue 16 (item 5): each is refused with one line and exit status 2 before
anything trains, or is valid for a stated reason and works.

Refusals run the console script's ``main`` in this process (the shell's code path, without a new
interpreter per case); one runs ``python -m benchmark.cli`` as a user does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from benchmark.config.compose import to_container
from benchmark.errors import ConfigError
from benchmark.experiment.plan import prepare
from benchmark.protocol.membership import MAX_MATRIX_ENTRIES, make_membership
from benchmark.training.engines import train
from tests.cli.test_bad_input import refuse
from tests.conftest import FAST, compose_config, run_cli


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["mia-bench"])
    return tmp_path


def _csv(path: Path, header: str, rows: list[str]) -> None:
    path.write_text(header + "\n" + "".join(row + "\n" for row in rows))


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """One bad data file per gap, each otherwise well-formed and large enough."""
    folder = tmp_path / "files"
    folder.mkdir()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)).astype(np.float32)
    y = rng.integers(0, 3, size=120)
    np.savez(folder / "x_1d.npz", X=x[:, 0], y=y)
    np.savez(folder / "string_labels.npz", X=x, y=np.array(["cat", "dog", "emu"])[y])
    np.savez(folder / "sparse_labels.npz", X=x, y=np.where(y == 1, 1_000_000, 0))
    _csv(folder / "labels_only.csv", "label", [str(v % 2) for v in range(40)])
    _csv(folder / "one_class.csv", "a,b,label", [f"{i},{i % 3},1" for i in range(40)])
    _csv(folder / "six_rows.csv", "a,label", [f"{i},{i % 2}" for i in range(6)])
    _csv(folder / "header_only.csv", "a,b,label", [])
    return folder


# (name, overrides after FAST, a piece of the expected line). {files} is the data folder.
CASES = [
    ("1-D X", ["data=npz", "data.path={files}/x_1d.npz"], "one row per point"),
    (
        "string labels",
        ["data=npz", "data.path={files}/string_labels.npz"],
        "labels must be integers 0..C-1, got dtype <U3",
    ),
    (
        "labels 0 and 1000000",
        ["data=npz", "data.path={files}/sparse_labels.npz"],
        "contiguous integers 0..C-1, found 2 distinct labels up to 1000000",
    ),
    ("CSV without features", ["data=csv", "data.path={files}/labels_only.csv"], "no feature"),
    ("CSV with one class", ["data=csv", "data.path={files}/one_class.csv"], "two classes"),
    (
        "CSV with 6 rows",
        ["data=csv", "data.path={files}/six_rows.csv"],
        "has 6 rows: its pool of 4 gives each model 2 training points, fewer than the 10",
    ),
    ("header-only CSV", ["data=csv", "data.path={files}/header_only.csv"], "has no rows"),
    ("seed above 32 bits", ["seed=99999999999"], "seed must be at most 2**32-1"),
    ("negative momentum", ["training.momentum=-5"], "training.momentum must be in [0, 1)"),
    (
        "batch larger than a training set",
        ["training.batch_size=1000000000"],
        "training.batch_size=1000000000 exceeds the 80 points each model trains on",
    ),
    (
        "a release after label-only",
        ["defense=[label_only,topk]"],
        "defense=label_only releases only the label, so topk after it",
    ),
    ("zero-width hidden layer", ["model.hidden=[0]"], "model.hidden must list layer widths >= 1"),
    ("dropout of 1", ["model.dropout=1"], "model.dropout must be in [0, 1)"),
    (
        "too many models",
        ["protocol.n_models=1000000"],
        "needs a membership matrix of 160,000,000 entries",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_gap_is_refused_in_one_line(
    overrides: list[str],
    expected: str,
    workdir: Path,
    files: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [*FAST, "tracking.enabled=false", *(o.format(files=files) for o in overrides)]
    assert expected in refuse(argv, capsys)
    assert sorted(p.name for p in workdir.iterdir()) == ["files"]  # nothing trained or written


def test_too_many_models_on_the_default_data_is_refused_at_once_by_the_cli(
    tmp_path: Path,
) -> None:
    """The issue's hang: protocol.n_models=100000 on the default dataset (1436 pool points)."""
    done = run_cli(["protocol.n_models=100000", "tracking.enabled=false"], tmp_path, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "set protocol.n_models to at most 46732" in done.stderr


def test_membership_limit_is_arithmetic_and_the_largest_allowed_matrix_is_balanced() -> None:
    n_points = 160
    most = MAX_MATRIX_ENTRIES // n_points // 2 * 2
    with pytest.raises(ConfigError, match=f"at most {most}"):
        make_membership(n_points, most + 2, seed=0)
    membership = make_membership(n_points, 2048, seed=0)  # once O(K^2 N); now O(K N)
    assert (membership.matrix.sum(axis=0) == 1024).all()
    assert (membership.matrix.sum(axis=1) == n_points // 2).all()


def test_defense_named_twice_is_the_same_configuration_as_once() -> None:
    """Hydra composes each option of a config group once: ``defense=[topk,topk]`` selects topk
    once (the list's second entry merges the same YAML into the same key), so it is valid and
    records exactly what ``defense=topk`` records."""
    twice = compose_config([*FAST, "defense=[topk,topk]"])
    once = compose_config([*FAST, "defense=topk"])
    assert to_container(twice) == to_container(once)
    assert [d.name for d in prepare(twice, show_progress=False).defenses] == ["topk"]


def test_label_only_last_is_still_valid() -> None:
    plan = prepare(compose_config([*FAST, "defense=[topk,label_only]"]), show_progress=False)
    assert [d.name for d in plan.defenses] == ["topk", "label_only"]


def test_3d_features_train_an_mlp(tmp_path: Path) -> None:
    """X of shape [N, a, b] is tabular data with a shape: model=mlp (and logreg) flatten every
    point, so it is valid and trains; model=cnn refuses it (it needs [N, C, H, W])."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=200)
    x = rng.normal(size=(200, 4, 5)).astype(np.float32) + y[:, None, None]
    path = tmp_path / "x3d.npz"
    np.savez(path, X=x, y=y)
    cfg = compose_config([*FAST, "data=npz", f"data.path={path}"])
    plan = prepare(cfg, show_progress=False)
    assert plan.pool.kind == "tabular" and plan.pool.input_shape == (4, 5)
    models = train(plan.recipe, plan.pool, plan.membership, progress=False)
    predicted = models.logits(0, plan.pool.x_test).argmax(dim=1).numpy()
    assert (predicted == plan.pool.y_test).mean() > 0.6  # learnt, not just ran
    with pytest.raises(ConfigError, match="model=cnn needs image data"):
        prepare(OmegaConf.merge(cfg, {"model": {"name": "cnn"}}), show_progress=False)
