"""The pieces of a sweep, without training: identity, parent reuse, resume, outcomes, SLURM."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf

from benchmark.cli import sweep
from benchmark.cli.sweep import (
    JobOutcome,
    finished_run,
    format_outcomes,
    open_parent_run,
    run_job,
    sweep_id,
)
from benchmark.config.compose import CONFIG_DIR, to_container
from benchmark.reporting.summary import ui_hint
from benchmark.tracking.params import sweep_name
from benchmark.tracking.record import _start_run
from benchmark.tracking.store import open_store
from tests.conftest import FAST


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, empty_mlflow_db: Path) -> Path:
    """One SQLite store for this module (each test uses its own experiment)."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    shutil.copy(empty_mlflow_db, path)
    return path


@pytest.fixture
def compose_with(db: Path, request: pytest.FixtureRequest, tmp_path: Path):
    """``compose_with(overrides)``: the config with Hydra's node, in this test's experiment."""

    def make(overrides: list[str]) -> DictConfig:
        tracking = [
            f"tracking.uri=sqlite:///{db}",
            f"tracking.artifact_location={tmp_path}/art",
            f"tracking.experiment={request.node.name}",
        ]
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            return compose("config", [*FAST, *overrides, *tracking], return_hydra_config=True)

    return make


def job_config(cfg: DictConfig) -> DictConfig:
    """What a job sees: the configuration without Hydra's node."""
    job = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    OmegaConf.set_struct(job, True)
    return job


def test_sweep_id_ignores_order_tracking_and_hydra_settings(compose_with) -> None:
    reference = sweep_id(compose_with(["defense=topk", "seed=1"]))
    assert sweep_id(compose_with(["seed=1", "defense=topk"])) == reference
    same = ["defense=topk", "seed=1", "tracking.resume=false", "hydra.sweep.dir=/elsewhere"]
    assert sweep_id(compose_with(same)) == reference
    assert sweep_id(compose_with(["defense=topk", "seed=2"])) != reference
    assert sweep_id(compose_with(["defense=topk", "seed=1", "attacks.version=0.2"])) != reference


def test_relaunch_reuses_the_parent_unless_resume_is_off(compose_with) -> None:
    cfg = compose_with(["seed=1"])
    first, reused = open_parent_run(cfg)
    assert not reused
    client, _ = open_store(cfg.tracking)
    client.set_terminated(first, "KILLED")  # as a launcher killed mid-sweep leaves it, or worse

    again, reused = open_parent_run(compose_with(["seed=1", "hydra.sweep.dir=/another/folder"]))
    assert (again, reused) == (first, True)
    parent = client.get_run(first)
    assert parent.info.status == "RUNNING"
    assert parent.data.tags["sweep_launches"] == "2"
    assert parent.data.tags["sweep_dir"] == "/another/folder"

    fresh, reused = open_parent_run(compose_with(["seed=1", "tracking.resume=false"]))
    assert fresh != first and not reused
    other, reused = open_parent_run(compose_with(["seed=2"]))
    assert other not in (first, fresh) and not reused


def _record(cfg: DictConfig, parent: str, status: str, **changes) -> str:
    """A configuration run as tracking.record leaves it (tags and params), with ``status``."""
    config = to_container(job_config(cfg))
    for path, value in changes.items():
        section, key = path.split("__")
        config[section][key] = value
    client, experiment_id = open_store(cfg.tracking)
    run_id = _start_run(client, experiment_id, config, parent)
    if status != "RUNNING":
        client.set_terminated(run_id, status)
    return run_id


def test_only_a_finished_run_of_the_same_configuration_is_skipped(
    compose_with, monkeypatch
) -> None:
    cfg = compose_with(["seed=1"])
    parent, _ = open_parent_run(cfg)
    monkeypatch.setattr("benchmark.cli.sweep.current_parent_run", lambda: parent)
    job = job_config(cfg)
    assert finished_run(job) is None

    other_parent, _ = open_parent_run(compose_with(["seed=1", "tracking.resume=false"]))
    _record(cfg, other_parent, "FINISHED")  # another sweep's run
    _record(cfg, parent, "FINISHED", protocol__n_models=6)  # another configuration
    _record(cfg, parent, "FINISHED", attacks__version="0.0")  # another attack suite
    _record(cfg, parent, "FAILED")  # failed: redone
    assert finished_run(job) is None

    done = _record(cfg, parent, "FINISHED")
    assert finished_run(job) == done


def test_interrupted_leftovers_are_marked_killed_and_redone(compose_with, monkeypatch) -> None:
    cfg = compose_with(["seed=1"])
    parent, _ = open_parent_run(cfg)
    monkeypatch.setattr("benchmark.cli.sweep.current_parent_run", lambda: parent)
    leftover = _record(cfg, parent, "RUNNING")
    failed = _record(cfg, parent, "FAILED")

    assert finished_run(job_config(cfg)) is None
    client, _ = open_store(cfg.tracking)
    assert client.get_run(leftover).info.status == "KILLED"
    assert client.get_run(leftover).data.tags["killed_reason"].startswith("interrupted")
    assert client.get_run(failed).info.status == "FAILED"


def test_a_job_never_raises(make_config, monkeypatch, capsys) -> None:
    bad = run_job(make_config([*FAST, "defense=topk", "defense.topk.k=99"]))
    assert bad.status == "failed" and bad.run_id is None
    assert bad.reason.startswith("bad configuration: defense.topk.k must be between 1")

    def crash(*args, **kwargs):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr("benchmark.cli.sweep.run", crash)
    crashed = run_job(make_config(FAST))
    assert crashed == JobOutcome("failed", None, "RuntimeError: the disk is full")
    assert "Traceback" in capsys.readouterr().err  # a bug keeps its trace in the job's log


def _job_config(number: int, output_dir: Path) -> DictConfig:
    return OmegaConf.create(
        {
            "hydra": {
                "mode": "MULTIRUN",
                "job": {"num": number},
                "runtime": {"output_dir": str(output_dir)},
            }
        }
    )


def test_outcomes_are_collected_into_one_summary(tmp_path: Path) -> None:
    finished = JobReturn(overrides=["seed=0", "data=synthetic"], status=JobStatus.COMPLETED)
    finished.return_value = JobOutcome("finished", "a" * 32)
    crashed = JobReturn(overrides=["seed=1", "data=synthetic"], status=JobStatus.FAILED)
    crashed._return_value = MemoryError("out of memory\nwhile training")
    records = [
        sweep._outcome_record(_job_config(0, tmp_path), finished),
        sweep._outcome_record(_job_config(1, tmp_path), crashed),
        {
            "job": 2,
            "overrides": ["seed=2", "data=synthetic"],
            **vars(JobOutcome("skipped", "b" * 32, "x")),
        },
    ]
    assert (
        records[1]["status"] == "failed"
        and records[1]["reason"] == "MemoryError: out of memory while training"
    )
    lines = format_outcomes(records, "p" * 32).splitlines()
    assert (
        lines[0]
        == "sweep summary: 3 jobs, 1 finished, 1 skipped, 1 failed; models 0 trained, 0 reused "
        f"(MLflow parent run {'p' * 32})"
    )
    # only what differs
    assert lines[1].split() == ["#0", "finished", "run", "a" * 32, "models", "-", "seed=0"]
    assert lines[2].split() == [
        "#1",
        "failed",
        "run",
        "-",
        "models",
        "-",
        "seed=1",
        "MemoryError:",
        "out",
        "of",
        "memory",
        "while",
        "training",
    ]
    assert lines[3].split() == ["#2", "skipped", "run", "b" * 32, "models", "-", "seed=2", "x"]


def test_the_summary_counts_trained_and_reused_models() -> None:
    sources = {"none": "trained", "topk": "cache:abc", "rounding": "cache:abc", "x": None}
    records = [
        {"job": i, "overrides": [f"defense={d}"], **vars(JobOutcome("finished", "a" * 32))}
        | {"models_source": source}
        for i, (d, source) in enumerate(sources.items())
    ]
    lines = format_outcomes(records, None).splitlines()
    assert lines[0].endswith("; models 1 trained, 2 reused")
    assert [line.split()[5] for line in lines[1:]] == ["trained", "reused", "reused", "-"]


def test_slurm_preset_is_accepted_by_submitit(tmp_path: Path, monkeypatch) -> None:
    """The preset's fields, passed as Hydra's submitit launcher passes them, make a valid sbatch
    script (submitit only needs to find ``srun``; nothing is submitted)."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    srun = tmp_path / "bin" / "srun"
    srun.parent.mkdir()
    srun.write_text("#!/bin/sh\nexit 0\n")
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{srun.parent}{os.pathsep}{os.environ['PATH']}")
    overrides = [
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.account=lab",
    ]
    overrides += ["hydra.launcher.setup=[module load cuda]", f"hydra.sweep.dir={tmp_path}/sweep"]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides, return_hydra_config=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    assert launcher.pop("_target_").endswith("SlurmLauncher")
    # as hydra_plugins.hydra_submitit_launcher.submitit_launcher.BaseSubmititLauncher.launch
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor = submitit.AutoExecutor(cluster="slurm", folder=tmp_path / "submitit")
    skip = {"submitit_folder", "max_num_timeout", "name"}
    executor.update_parameters(
        **{k if k in base else f"slurm_{k}": v for k, v in launcher.items() if k not in skip}
    )
    script = executor._executor._make_submission_file_text("python -m benchmark.cli", "uid")
    for line in [
        "#SBATCH --partition=gpu",
        "#SBATCH --account=lab",
        "#SBATCH --time=240",
        "#SBATCH --mem=32GB",
        "#SBATCH --cpus-per-task=8",
        "module load cuda",
    ]:
        assert line in script


def test_a_sweep_without_tracking_writes_no_store(compose_with, tmp_path: Path) -> None:
    cfg = compose_with(["tracking.enabled=false", f"hydra.sweep.dir={tmp_path}/sweep"])
    cfg.tracking.uri = f"sqlite:///{tmp_path}/results/mlflow.db"
    sweep.SweepCallback().on_multirun_start(config=cfg)
    assert not (tmp_path / "results").exists()
    assert list((tmp_path / "sweep").iterdir()) == []


def test_the_sweep_ends_with_its_summary_and_status(compose_with, tmp_path: Path, capsys) -> None:
    """In one process, what Hydra calls across processes: start, each job's end, the end."""
    callback = sweep.SweepCallback()
    cfg = compose_with([f"hydra.sweep.dir={tmp_path}/sweep"])
    callback.on_multirun_start(config=cfg)
    parent = (tmp_path / "sweep" / "mlflow_parent_run_id").read_text()
    outcomes = [
        JobOutcome("finished", "a" * 32),
        JobOutcome("failed", None, "bad configuration: x"),
    ]
    for number, outcome in enumerate(outcomes):
        job = cfg.copy()
        job.hydra.job.num = number
        job.hydra.runtime.output_dir = str(tmp_path / "sweep" / str(number))
        job.hydra.mode = "MULTIRUN"
        returned = JobReturn(overrides=[f"seed={number}"], status=JobStatus.COMPLETED)
        returned.return_value = outcome
        callback.on_job_end(config=job, job_return=returned)
    with pytest.raises(SystemExit) as exit_:
        callback.on_multirun_end(config=cfg)
    assert exit_.value.code == 1
    out, err = capsys.readouterr()
    assert (
        "sweep summary: 2 jobs, 1 finished, 0 skipped, 1 failed; models 0 trained, 0 reused "
        f"(MLflow parent run {parent})" in out
    )
    assert "#1   failed    run -" in out and "bad configuration: x" in out
    assert err.strip() == "mia-bench: 1 of 2 jobs failed"
    client, _ = open_store(cfg.tracking)
    assert client.get_run(parent).info.status == "FAILED"


def test_the_parent_run_is_named_after_what_the_sweep_varies():
    config = OmegaConf.create(
        {
            "hydra": {
                "sweeper": {"params": {"defense": "none,topk", "protocol.canaries": "0,100"}},
                "overrides": {"task": ["seed=0,1", "defense=[topk,rounding]", "data=digits"]},
                "sweep": {"dir": "multirun/2026-12-03/06-00-00"},
            }
        }
    )
    assert sweep_name(config) == "sweep defense × protocol.canaries × seed · 06-00-00"


def test_the_ui_hint_opens_the_compare_view():
    local = ui_hint("sqlite:///results/mlflow.db", "3")
    assert "mlflow ui --backend-store-uri sqlite:///results/mlflow.db" in local
    assert "http://127.0.0.1:5000/#/experiments/3/runs?viewStateShareKey=compare" in local
    server = ui_hint("http://mlflow.example.org:5000/", "3")
    assert "mlflow ui" not in server and "http://mlflow.example.org:5000/#/experiments/3/" in server
