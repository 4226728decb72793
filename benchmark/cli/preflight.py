"""Checking a command line before Hydra runs it, so that every refusal is one line.

Hydra reports a bad override (an unknown option, a value of the wrong type) over several lines,
and in a sweep only once the sweep has started and its parent run is recorded. Our own checks
(:func:`benchmark.experiment.prepare`) run inside each job. :func:`check_command_line` runs before
both, in the launching process, and raises :class:`~benchmark.errors.ConfigError` with one line:

* it composes the configuration as Hydra will (for a sweep, every job, expanded as Hydra's basic
  sweeper expands it) and condenses Hydra's errors, keeping its list of valid options; a key
  that is not in the configuration, or an appended ``+key`` that nothing reads, is refused with
  the nearest real key (:mod:`benchmark.cli.unknown_keys`);
* it checks that the MLflow store can be written or the MLflow server reached;
* it prepares the configuration (data, membership, defenses, attacks, model) without training;
  for a sweep, every job, so that a sweep with one bad job is refused whole before anything runs
  or is written.

A sweep's jobs are composed once per distinct set of config files; sets that differ only in the
options of one group (the standard sweep's defenses) share one composition of the other files,
to which each set's option files are added; other sets are composed by forked workers in
parallel when there are many. The jobs are prepared with each dataset loaded once. Hydra's
internals (its argument and override parsers, the sweep expansion, the override application, a
config file's content and package) are reached only through :mod:`benchmark.cli.hydra_internals`.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from benchmark.cli import hydra_internals as hi
from benchmark.cli.unknown_keys import check_appended, unknown_key_message
from benchmark.config.checks import validate
from benchmark.config.compose import to_container
from benchmark.data.pool import load_pool
from benchmark.errors import ConfigError
from benchmark.experiment.plan import prepare
from benchmark.tracking.store import check_store

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
        raise ConfigError(hi.condense(exc)) from None


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


def _sweep_jobs(base: DictConfig, lines: list[hi.Line]) -> list[list[str]]:
    """Every job's overrides, as Hydra's basic sweeper expands the sweep."""
    hydra_sweeps = [line.text for line in lines if line.sweep and line.hydra]
    if hydra_sweeps:
        raise ConfigError(f"sweeping over Hydra's own settings is not supported: {hydra_sweeps[0]}")
    params: dict[str, Any] = dict(base.hydra.sweeper.get("params") or {})
    job = [f"{key}={value}" for key, value in params.items()]
    job += [line.text for line in lines if not line.hydra]
    return hi.expand_sweep(job)


def _job_label(index: int, job: list[str], swept: set[str]) -> str:
    shown = [o for o in job if o.split("=", 1)[0] in swept]
    return f"job #{index} ({' '.join(shown)}): "


#: From this many distinct sets of config files on, a sweep's preflight composes them in parallel.
PARALLEL_FROM = 8


def _choices(lines: list[hi.Line]) -> tuple[str, ...]:
    """A job's config group choices: the overrides that select config files."""
    return tuple(line.text for line in lines if line.choice)


def _cores() -> int:
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def _compose(job: tuple[str, tuple[str, ...]]) -> DictConfig | tuple[str, str | None]:
    """One set of files composed in a forked worker; a failure as (message, key) (picklable)."""
    name, choices = job
    try:
        return hi.compose(name, choices)
    except hi.ComposeError as exc:
        return str(exc), exc.key


class JobComposer:
    """Each job's config, composing the files once per distinct set of group choices.

    Hydra composes a job in two steps: the config files its group choices select, then its value
    overrides on top. A sweep's jobs share most choices (the standard sweep: 76 jobs, 38 sets of
    files), so the first step is done once per set and the second on a copy, with Hydra's own
    code (:func:`~benchmark.cli.hydra_internals.apply_overrides`). Sets that differ only in the
    options of one group (the standard sweep's 38 defenses) are not composed one by one either:
    the other files are composed once without that group, and each set's option files are merged
    in (:meth:`add_options`), where Hydra would give the same config.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.files: dict[tuple[str, ...], DictConfig | hi.ComposeError] = {}
        self.lines: dict[tuple[str, ...], list[hi.Line]] = {}

    def read(self, overrides: list[str]) -> list[hi.Line]:
        """``hi.read_lines(overrides)``, parsed once per distinct job."""
        key = tuple(overrides)
        if key not in self.lines:
            self.lines[key] = hi.read_lines(overrides)
        return self.lines[key]

    def prefetch(self, jobs: list[list[str]]) -> None:
        """Compose the distinct sets of files of ``jobs``, in parallel where it pays.

        Composing is Hydra's own work and most of a sweep's preflight (the standard sweep: 38
        sets, ~0.1-0.2 s each); the sets are independent, so forked workers compose them on every
        core, each with Hydra initialised as here, and send the configs back pickled. First,
        the sets that differ only in one group's options are composed by :meth:`add_options`.
        """
        wanted = {_choices(self.read(job)) for job in jobs} - set(self.files)
        wanted -= self.add_options(wanted)
        workers = min(len(wanted), _cores())
        if len(wanted) < PARALLEL_FROM or workers < 2 or "fork" not in mp.get_all_start_methods():
            return  # job() composes them one by one
        ordered = sorted(wanted)
        with mp.get_context("fork").Pool(workers) as pool:
            composed = pool.map(_compose, [(self.name, c) for c in ordered], chunksize=1)
        for choices, result in zip(ordered, composed, strict=True):
            self.files[choices] = (
                result if isinstance(result, DictConfig) else hi.ComposeError(*result)
            )

    def add_options(self, wanted: set[tuple[str, ...]]) -> set[tuple[str, ...]]:
        """Compose the sets of ``wanted`` that differ only in the options of one group ``G``:
        the rest composed once with ``~G`` (``G`` deleted from the defaults list), then each
        set's options of ``G`` merged in; the sets composed this way.

        Hydra gives the same config when, as checked here, the rest leaves ``G``'s node empty (no
        other file writes there, so the order of the merges does not matter) and each option is
        a plain file of ``G``'s package (:func:`~benchmark.cli.hydra_internals.option_config`:
        no defaults list, which could select other files). Any other set, and any error, is left
        to a whole composition, which also words the refusal.
        """
        choice_lines = {c: [line for line in self.read(list(c)) if line.choice] for c in wanted}
        keys = {line.key for lines in choice_lines.values() for line in lines}
        varying = [
            key
            for key in keys
            if len({tuple(ln.text for ln in ls if ln.key == key) for ls in choice_lines.values()})
            > 1
        ]
        if len(wanted) < 2 or len(varying) != 1:
            return set()
        (group,) = varying
        by_rest: dict[tuple[str, ...], dict[tuple[str, ...], list[str]]] = {}
        for choices, lines in choice_lines.items():
            own = [line for line in lines if line.key == group]
            chosen = hi.group_choice(own[0].text) if len(own) == 1 else None
            if chosen is None or chosen[0] != group:
                continue
            rest = tuple(line.text for line in lines if line.key != group)
            by_rest.setdefault(rest, {})[choices] = chosen[1]
        done: set[tuple[str, ...]] = set()
        for rest, sets in by_rest.items():
            try:
                base = hi.compose(self.name, [*rest, f"~{group}"])
            except hi.ComposeError:
                continue
            node = OmegaConf.select(base, group.replace("/", "."))
            if not isinstance(node, DictConfig) or len(node) > 0:
                continue
            for choices, options in sets.items():
                configs = [hi.option_config(group, option) for option in options]
                if all(config is not None for config in configs):
                    self.files[choices] = hi.add_options(base, configs)  # type: ignore[arg-type]
                    done.add(choices)
        return done

    def job(self, overrides: list[str], label: str = "") -> DictConfig:
        lines = self.read(overrides)
        choices = _choices(lines)
        values = [line for line in lines if not line.choice]
        if choices not in self.files:
            try:
                self.files[choices] = hi.compose(self.name, choices)
            except hi.ComposeError as exc:
                self.files[choices] = exc
        files = self.files[choices]
        if isinstance(files, hi.ComposeError):
            raise ConfigError(label + str(files))
        try:
            check_appended(files, values)
            return hi.apply_overrides(files, [line.text for line in values])
        except hi.ComposeError as exc:
            bad = next((line for line in values if line.key == exc.key), None)
            if bad is None:
                raise ConfigError(label + str(exc)) from None
            raise ConfigError(label + unknown_key_message(files, bad)) from None
        except ConfigError as exc:
            raise ConfigError(label + str(exc)) from None


def _compose_jobs(args: Any) -> list[tuple[str, DictConfig]]:
    """Each job's configuration, with the label that names it in a refusal."""
    name = args.config_name or "config"
    lines = hi.read_lines(args.overrides)
    fixed = [line.text for line in lines if not line.sweep]
    # Hydra's settings (mode, sweeper) come from the choices alone; a bad value is the job's error
    base = hi.compose(name, [line.text for line in lines if line.choice and not line.sweep], True)
    composer = JobComposer(name)
    if not (args.multirun or base.hydra.mode == hi.RunMode.MULTIRUN):
        if any(line.sweep for line in lines):  # Hydra's own word on a sweep without -m
            hi.compose(name, args.overrides)
        return [("", composer.job(args.overrides))]
    if base.hydra.sweeper.get("_target_") != hi.BASIC_SWEEPER:
        return [("", composer.job(fixed))]  # another sweeper chooses its jobs as it runs
    swept = {line.key for line in lines if line.sweep}
    swept |= set(base.hydra.sweeper.get("params") or {})
    jobs = []
    sweep = _sweep_jobs(base, lines)
    composer.prefetch(sweep)
    for i, job in enumerate(sweep):
        label = _job_label(i, job, swept)
        jobs.append((label, composer.job(job, label)))
    return jobs


def check_command_line(argv: Sequence[str], config_dir: str) -> None:
    """Check ``mia-bench`` arguments as Hydra will run them; raise ConfigError with one line."""
    args, unknown = hi.parse_args(argv)
    if unknown and unknown[0].startswith("-"):
        raise ConfigError(f"unknown option {unknown[0]}: see mia-bench --help")
    if unknown:  # Hydra reads overrides only after its options
        raise ConfigError(
            f"the override {unknown[0]} comes after an option: put options such as -m first, "
            "e.g. mia-bench -m defense=none,topk seed=0,1"
        )
    if any(getattr(args, flag, None) for flag in LEFT_TO_HYDRA):
        return
    with hi.config_dir(config_dir):
        jobs = _compose_jobs(args)
    _prepare_jobs(jobs)
    stores = {json.dumps(OmegaConf.to_container(cfg.tracking)): cfg.tracking for _, cfg in jobs}
    for tracking in stores.values():
        check_tracking(tracking)
