"""Checking a command line before Hydra runs it, so that every refusal is one line.

Hydra reports a bad override (an unknown option, a value of the wrong type) over several lines,
and in a sweep only once the sweep has started and its parent run is recorded. Our own checks
(:func:`benchmark.experiment.prepare`) run inside each job. :func:`check_command_line` runs before
both, in the launching process, and raises :class:`~benchmark.errors.ConfigError` with one line:

* it composes the configuration as Hydra will (for a sweep, every job, expanded as Hydra's basic
  sweeper expands it) and condenses Hydra's errors, keeping its list of valid options;
* it checks that the MLflow store can be written or the MLflow server reached;
* it prepares the configuration (data, membership, defenses, attacks, model) without training;
  for a sweep, every job, so that a sweep with one bad job is refused whole before anything runs
  or is written.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import get_args_parser
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from benchmark.config.checks import validate
from benchmark.config.compose import to_container
from benchmark.data.pool import load_pool
from benchmark.errors import ConfigError
from benchmark.experiment.plan import prepare
from benchmark.tracking.store import check_store

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
#: Flags that make Hydra print something, or compose from elsewhere: those are left to Hydra.
LEFT_TO_HYDRA = (
    "help",
    "hydra_help",
    "info",
    "cfg",
    "shell_completion",
    "experimental_rerun",
    "config_path",
    "config_dir",
)


def condense(exc: BaseException) -> str:
    """Hydra's (or OmegaConf's) multi-line error message as one line, valid options kept.

    ``In 'config': Could not find 'defense/foo'`` + ``Available options in 'defense':`` + one
    option a line becomes ``...; Available options in 'defense': none, topk, weight_decay``; the
    config search path and OmegaConf's ``full_key``/``object_type`` lines are dropped.
    """
    text = str(exc).split("Config search path:")[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [
        line
        for line in lines
        if not line.startswith(("full_key:", "object_type=", "reference_type="))
    ]
    for i, line in enumerate(lines):
        if line.startswith("Available options in"):
            lines[i:] = [f"{line} {', '.join(lines[i + 1 :])}"]
            break
    if not lines:
        return type(exc).__name__
    cause = str(exc.__cause__ or "").strip()
    if cause:
        lines[0] = f"{lines[0].rstrip('.')}: {cause.splitlines()[0].strip()}"
    return "; ".join(lines)


def _parse(lines: Sequence[str]) -> list[Override]:
    """Parse overrides one by one, so that a refusal names the one that does not parse."""
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    parsed = []
    for line in lines:
        try:
            parsed += parser.parse_overrides([line])
        except HydraException as exc:
            raise ConfigError(f"cannot parse the override '{line}': {condense(exc)}") from None
    return parsed


def _compose(
    name: str, overrides: Sequence[str], label: str = "", hydra: bool = False
) -> DictConfig:
    try:
        return compose(config_name=name, overrides=list(overrides), return_hydra_config=hydra)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(label + condense(exc)) from None


def check_server(uri: str) -> None:
    """Refuse an ``http(s)`` tracking URI where no server answers (MLflow would retry minutes)."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=10).close()
    except urllib.error.HTTPError:
        return  # something answered: authentication and the like are MLflow's business
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConfigError(
            f"cannot reach the MLflow server at tracking.uri={uri} ({reason}): start it "
            "(mlflow server --host HOST --port PORT) or set tracking.uri to a running server"
        ) from None


def check_tracking(tracking: DictConfig) -> None:
    """The store can be written (SQLite, artifact folder) or the server answers."""
    if tracking.enabled:
        check_store(tracking)
        check_server(tracking.uri)


def _check_values(cfg: DictConfig) -> None:
    try:
        validate(cfg)
        to_container(cfg)
    except OmegaConfBaseException as exc:  # a missing mandatory value, a deleted key
        raise ConfigError(condense(exc)) from None


def _prepare_jobs(jobs: list[tuple[str, DictConfig]]) -> None:
    """Prepare every job without training; refuse with the first bad job (and count the rest).

    Jobs are grouped by dataset and seed so that each pool is loaded once and only one pool is
    held in memory at a time.
    """
    errors: dict[int, str] = {}
    groups: dict[str, list[int]] = {}
    for index, (label, cfg) in enumerate(jobs):
        try:
            _check_values(cfg)
        except ConfigError as exc:
            errors[index] = f"{label}{exc}"
            continue
        key = json.dumps([to_container(cfg.data), cfg.seed], sort_keys=True)
        groups.setdefault(key, []).append(index)
    for members in groups.values():
        first = jobs[members[0]][1]
        try:
            pool = load_pool(first.data, first.seed)
        except ConfigError as exc:
            errors.update({i: f"{jobs[i][0]}{exc}" for i in members})
            continue
        for i in members:
            try:
                prepare(jobs[i][1], show_progress=False, pool=pool)
            except ConfigError as exc:
                errors[i] = f"{jobs[i][0]}{exc}"
    if errors:
        first = errors[min(errors)]
        n_more = len(errors) - 1
        more = f" (and {n_more} more bad job{'s' if n_more > 1 else ''})" if n_more else ""
        raise ConfigError(first + more)


def _sweep_jobs(base: DictConfig, overrides: list[Override]) -> list[list[str]]:
    """Every job's overrides, as Hydra's basic sweeper expands the sweep."""
    hydra_sweeps = [
        o.input_line for o in overrides if o.is_hydra_override() and o.is_sweep_override()
    ]
    if hydra_sweeps:
        raise ConfigError(f"sweeping over Hydra's own settings is not supported: {hydra_sweeps[0]}")
    params: dict[str, Any] = dict(base.hydra.sweeper.get("params") or {})
    lines = [f"{key}={value}" for key, value in params.items()]
    lines += [o.input_line for o in overrides if not o.is_hydra_override()]
    try:
        return BasicSweeper.split_arguments(_parse(lines), None)[0]
    except HydraException as exc:
        raise ConfigError(condense(exc)) from None


def _job_label(index: int, job: list[str], swept: set[str]) -> str:
    shown = [o for o in job if o.split("=", 1)[0] in swept]
    return f"job #{index} ({' '.join(shown)}): "


def _compose_jobs(args: Any) -> list[tuple[str, DictConfig]]:
    """Each job's configuration, with the label that names it in a refusal."""
    name = args.config_name or "config"
    overrides = _parse(args.overrides)
    fixed = [o.input_line for o in overrides if not o.is_sweep_override()]
    base = _compose(name, fixed, hydra=True)
    if not (args.multirun or base.hydra.mode == RunMode.MULTIRUN):
        # composed again with every override: Hydra's own word on a sweep without -m
        return [("", _compose(name, args.overrides))]
    if base.hydra.sweeper.get("_target_") != BASIC_SWEEPER:
        return [("", _compose(name, fixed))]  # another sweeper chooses its jobs as it runs
    swept = {o.get_key_element() for o in overrides if o.is_sweep_override()}
    swept |= set(base.hydra.sweeper.get("params") or {})
    jobs = []
    for i, job in enumerate(_sweep_jobs(base, overrides)):
        label = _job_label(i, job, swept)
        jobs.append((label, _compose(name, job, label)))
    return jobs


def check_command_line(argv: Sequence[str], config_dir: str) -> None:
    """Check ``mia-bench`` arguments as Hydra will run them; raise ConfigError with one line."""
    args, unknown = get_args_parser().parse_known_args(list(argv))
    if unknown and unknown[0].startswith("-"):
        raise ConfigError(f"unknown option {unknown[0]}: see mia-bench --help")
    if unknown:  # Hydra reads overrides only after its options
        raise ConfigError(
            f"the override {unknown[0]} comes after an option: put options such as -m first, "
            "e.g. mia-bench -m defense=none,topk seed=0,1"
        )
    if any(getattr(args, flag, None) for flag in LEFT_TO_HYDRA):
        return
    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        jobs = _compose_jobs(args)
    _prepare_jobs(jobs)
    stores = {json.dumps(OmegaConf.to_container(cfg.tracking)): cfg.tracking for _, cfg in jobs}
    for tracking in stores.values():
        check_tracking(tracking)
