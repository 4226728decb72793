"""``pip install`` a real wheel (not ``-e``) and run ``mia-bench`` from a folder outside the
checkout, as a user does: the configs travel in the wheel (``conf/`` as ``benchmark.conf``) and the
results land in ``./results`` of the working folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

#: What a checkout holds besides the package (never copied into the build: results are big).
NOT_SOURCE = shutil.ignore_patterns(
    ".git", "results", "build", "dist", "*.egg-info", "__pycache__", ".*cache", ".venv"
)


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 600):
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment on top of the test environment, with the wheel installed."""
    root = tmp_path_factory.mktemp("wheel")
    source, wheels, env_dir = root / "source", root / "wheels", root / "venv"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)  # build a copy: the checkout stays clean
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    built = _run([*pip, "-w", str(wheels), str(source)], root, env)
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("mia_bench-*.whl")
    # no pip of its own (ensurepip may be missing): the test environment's pip installs into it
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(env_dir)],
        check=True,
    )
    install = [sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python")]
    install += ["install", "-q", "--no-deps", "--no-index", "--force-reinstall", str(wheel)]
    installed = _run(install, root, env)
    assert installed.returncode == 0, installed.stderr
    return env_dir


@pytest.fixture
def user(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A working folder outside the checkout, and an environment that cannot see the checkout."""
    folder = tmp_path / "work"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    env["PYTHONNOUSERSITE"] = "1"
    return folder, env


@pytest.mark.slow
def test_the_wheel_runs_from_any_folder(venv: Path, user: tuple[Path, dict[str, str]]) -> None:
    folder, env = user
    where = _run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import benchmark, benchmark.config.compose as c; "
            "print(benchmark.__file__, c.CONFIG_DIR)",
        ],
        folder,
        env,
    )
    package, configs = where.stdout.split()
    # the wheel, not the checkout's editable install that the base environment also holds
    assert Path(package).is_relative_to(venv) and Path(configs).is_relative_to(venv), where.stdout
    assert (Path(configs) / "defense" / "strength" / "dpsgd_mid.yaml").is_file()

    done = _run(
        [str(venv / "bin" / "mia-bench"), "protocol.n_models=2", "training.epochs=1"], folder, env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MLflow run " in done.stdout
    assert (folder / "results" / "mlflow.db").is_file()
    assert (folder / "results" / "mlartifacts").is_dir()


@pytest.mark.slow
def test_the_wheel_refuses_before_writing(venv: Path, user: tuple[Path, dict[str, str]]) -> None:
    folder, env = user
    done = _run([str(venv / "bin" / "mia-bench"), "defense=dpsgd", "target_epsilon=1"], folder, env)
    assert done.returncode == 2, done.stderr
    assert "did you mean defense.dpsgd.target_epsilon=1?" in done.stderr
    assert list(folder.iterdir()) == []
