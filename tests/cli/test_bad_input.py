"""Bad input: one line on stderr, exit status 2, no traceback, nothing trained or written.

Most cases run the console script's ``main`` in this process (the same code path as the shell,
without paying the imports of a new interpreter for each); a few run ``python -m benchmark.cli``
as a subprocess, exactly as a user sees it.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmark.cli.main import main
from benchmark.cli.preflight import check_command_line
from benchmark.config.compose import CONFIG_DIR
from tests.conftest import FAST, run_cli


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working folder of the command (Hydra writes its outputs below it)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["mia-bench"])
    return tmp_path


def store(folder: Path) -> list[str]:
    return [
        f"tracking.uri=sqlite:///{folder}/results/mlflow.db",
        f"tracking.artifact_location={folder}/results/mlartifacts",
    ]


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """Data files, good and bad, for the local-file loaders."""
    folder = tmp_path / "files"
    folder.mkdir()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)).astype(np.float32)
    y = rng.integers(0, 3, size=120)
    np.savez(folder / "good.npz", X=x, y=y)
    (folder / "corrupt.npz").write_bytes(b"PK\x03\x04 not a zip archive at all")
    np.savez(folder / "negative_labels.npz", X=x, y=np.where(y == 0, -1, y))
    np.savez(folder / "fractional_labels.npz", X=x, y=y + 0.5)
    np.savez(folder / "empty.npz", X=np.zeros((0, 6), np.float32), y=np.zeros(0, np.int64))
    x_nan = x.copy()
    x_nan[7, 2] = np.nan
    np.savez(folder / "nan.npz", X=x_nan, y=y)
    np.savez(folder / "no_labels.npz", X=x)
    (folder / "table.csv").write_text(
        "a,b,label\n" + "".join(f"{i},{i % 5},{i % 2}\n" for i in range(40))
    )
    (folder / "a_file").write_text("a file where a folder is expected")
    return folder


def refuse(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``mia-bench argv``; assert a one-line refusal with status 2 and return the line."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out, err = capsys.readouterr()
    assert exit_.value.code == 2, (out, err)
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mia-bench: error: ")
    return lines[0]


def free_port() -> int:
    """A port where nothing listens (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# (name, overrides after FAST, a piece of the expected line). {files} is the data folder.
CASES = [
    (
        "unknown group option",
        ["defense=foo"],
        "Could not find 'defense/foo'; Available options in 'defense': adversarial_regularisation,",
    ),
    (
        "unknown launcher",
        ["hydra/launcher=nope"],
        "'hydra/launcher': basic, joblib, slurm, submitit_local",
    ),
    ("unknown key", ["foo=1"], "no key foo in the configuration (foo=1): see every key with"),
    (
        "key without its section",
        ["defense=dpsgd", "target_epsilon=1"],
        "(target_epsilon=1): did you mean defense.dpsgd.target_epsilon=1?",
    ),
    ("misspelt key", ["training.epoch=2"], "did you mean training.epochs=2?"),
    (
        "appended key nothing reads",
        ["defense=topk", "+k=3"],
        "nothing reads the appended key k (+k=3): did you mean defense.topk.k=3?",
    ),
    ("appended defense parameter", ["defense=topk", "+defense.topk.kk=3"], "defense.topk:"),
    ("unknown engine", ["training.engine=bogus"], "unknown engine training.engine=bogus"),
    (
        "wrong type",
        ["protocol.n_models=abc"],
        "'abc' of type 'str' could not be converted to Integer",
    ),
    ("wrong type, float for int", ["data.n_samples=1.5"], "could not be converted to Integer"),
    ("unparsable override", ["seed=["], "cannot parse the override 'seed=['"),
    ("sweep without -m", ["seed=0,1"], "add --multirun"),
    ("unknown flag", ["--bogus"], "unknown option --bogus"),
    ("override after a flag", ["-m", "seed=0,1"], "the override seed=0,1 comes after an option"),
    ("odd K", ["protocol.n_models=3"], "protocol.n_models must be even"),
    ("more targets than models", ["protocol.n_targets=9"], "protocol.n_targets must be between 1"),
    ("negative canaries", ["protocol.canaries=-1"], "protocol.canaries must be >= 0"),
    ("negative learning rate", ["training.lr=-1"], "training.lr must be positive"),
    ("zero epochs", ["training.epochs=0"], "training.epochs must be >= 1"),
    ("negative seed", ["seed=-1"], "seed must be a non-negative integer"),
    ("top-k of zero", ["defense=topk", "defense.topk.k=0"], "defense.topk.k must be between 1"),
    ("top-k above classes", ["defense=topk", "defense.topk.k=6"], "number of classes 5 (got 6)"),
    ("top-k not an int", ["defense=topk", "defense.topk.k=abc"], "defense.topk:"),
    ("no path", ["data=npz"], "set data.path"),
    ("missing path", ["data=npz", "data.path={files}/nowhere.npz"], "does not exist"),
    ("corrupt npz", ["data=npz", "data.path={files}/corrupt.npz"], "is not a valid npz file"),
    ("npz without labels", ["data=npz", "data.path={files}/no_labels.npz"], "missing arrays ['y']"),
    (
        "labels out of range",
        ["data=npz", "data.path={files}/negative_labels.npz"],
        "labels must be",
    ),
    (
        "fractional labels",
        ["data=npz", "data.path={files}/fractional_labels.npz"],
        "labels must be",
    ),
    ("empty dataset", ["data=npz", "data.path={files}/empty.npz"], "has no rows"),
    ("NaN features", ["data=npz", "data.path={files}/nan.npz"], "NaN"),
    (
        "unknown csv column",
        ["data=csv", "data.path={files}/table.csv", "data.label_column=y"],
        "not a column",
    ),
    (
        "results under a file",
        ["tracking.uri=sqlite:///{files}/a_file/mlflow.db"],
        "is not a folder",
    ),
    (
        "artifacts under a file",
        ["tracking.artifact_location={files}/a_file/art"],
        "is not a folder",
    ),
    ("database is a folder", ["tracking.uri=sqlite:///{files}"], "it is a folder or read-only"),
]


@pytest.mark.parametrize(
    ("overrides", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_refused_in_one_line(
    overrides: list[str],
    expected: str,
    workdir: Path,
    files: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [*FAST, *store(workdir), *(o.format(files=files) for o in overrides)]
    line = refuse(argv, capsys)
    assert expected in line
    assert sorted(p.name for p in workdir.iterdir()) == ["files"]  # no store, no Hydra outputs


def test_unreachable_mlflow_server_is_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    line = refuse([*FAST, f"tracking.uri={uri}"], capsys)
    assert f"cannot reach the MLflow server at tracking.uri={uri}" in line
    assert list(workdir.iterdir()) == []


def test_sweep_with_one_bad_job_is_refused_whole(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["-m", *FAST, *store(workdir), "defense=topk", "defense.topk.k=1,2,6,7", "seed=0,1"]
    line = refuse(argv, capsys)
    # jobs are numbered as Hydra numbers them; the first bad one is named, the others counted
    assert "job #4 (defense.topk.k=6 seed=0): defense.topk.k must be between 1" in line
    assert line.endswith("(and 3 more bad jobs)")
    assert list(workdir.iterdir()) == []


def test_sweep_over_an_unknown_option_names_the_job(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refuse(["-m", *FAST, *store(workdir), "defense=none,fooo"], capsys)
    assert "job #1 (defense=fooo): In 'config': Could not find 'defense/fooo'" in line
    assert "Available options in 'defense':" in line


def test_sweep_over_an_unknown_key_names_the_job_and_the_key(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refuse(
        ["-m", *FAST, *store(workdir), "defense=topk", "seed=0,1", "defense.topk.kk=1"], capsys
    )
    assert "job #0 (seed=0): no key defense.topk.kk in the configuration" in line
    assert line.endswith("(defense.topk.kk=1): did you mean defense.topk.k=1?")
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("defense.dpsgd.target_epsilon=-1", "defense.dpsgd.target_epsilon"),
        ("defense.dpsgd.delta=0.5", "defense.dpsgd.delta"),
        ("defense.dpsgd.max_grad_norm=0", "defense.dpsgd.max_grad_norm"),
    ],
)
def test_impossible_dpsgd_parameters_are_refused(
    override: str, expected: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refuse([*FAST, *store(workdir), "defense=dpsgd", override], capsys)
    assert expected in line
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize(
    "argv",
    [
        [*FAST],
        [*FAST, "+experiment=defense_sweep"],
        [*FAST, "defense=none", "+defense.topk.k=2"],
        ["-m", *FAST, "seed=0,1", "defense=none,topk"],
        ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *FAST, "seed=0,1"],
        ["-m", "hydra/launcher=slurm", "hydra.launcher.partition=gpu", *FAST, "seed=0,1"],
    ],
    ids=["run", "preset", "appended defense", "sweep", "joblib sweep", "slurm sweep"],
)
def test_good_command_lines_pass_the_checks(argv: list[str], workdir: Path) -> None:
    check_command_line([*argv, *store(workdir)], CONFIG_DIR)
    assert list(workdir.iterdir()) == []  # checking writes nothing either


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ["defense=foo"],
            "Available options in 'defense': adversarial_regularisation, augmentation,",
        ),
        (["protocol.n_models=abc"], "could not be converted to Integer"),
        (["-m", "defense=topk", "defense.topk.k=1,99"], "job #1 (defense.topk.k=99)"),
        (["training.engine=bogus"], "unknown engine training.engine=bogus"),
    ],
    ids=["unknown option", "wrong type", "sweep with a bad job", "unknown engine"],
)
def test_refusal_as_the_user_sees_it(
    overrides: list[str], expected: str, files: Path, tmp_path: Path
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    flags = [o for o in overrides if o.startswith("-")]
    rest = [o.format(files=files) for o in overrides if not o.startswith("-")]
    args = [*flags, *FAST, *rest]  # the default store, under workdir
    done = run_cli(args, workdir, timeout=120)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("mia-bench: error: "), (
        done.stderr
    )
    assert expected in done.stderr
    assert list(workdir.iterdir()) == []  # no results/mlflow.db, no Hydra output folder
