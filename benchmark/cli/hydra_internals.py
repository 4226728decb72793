"""Every use of Hydra's internals, in one file, so that a Hydra upgrade breaks only this one.

The preflight (:mod:`benchmark.cli.preflight`) must see a command line exactly as Hydra will:
parse ``mia-bench``'s options with Hydra's own argument parser, parse each override with Hydra's
override grammar, expand a sweep as Hydra's basic sweeper expands it, compose each job, and read
Hydra's error messages. Hydra (1.3) exposes only part of that publicly; the rest lives under
``hydra._internal``. Nothing else in the project imports ``hydra._internal``, the override parser
or the sweeper (``tests/cli/test_hydra_internals.py`` pins the behaviour relied on here).
"""

from __future__ import annotations

import argparse
import copy
import importlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import get_args_parser
from hydra.core.config_loader import ConfigLoader
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException
from hydra.plugins.config_source import ConfigLoadError, ConfigSource
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from benchmark.errors import ConfigError

__all__ = [
    "BASIC_SWEEPER",
    "ComposeError",
    "Line",
    "RunMode",
    "apply_overrides",
    "add_options",
    "compose",
    "condense",
    "config_dir",
    "expand_sweep",
    "group_choice",
    "option_config",
    "parse_args",
    "parse_overrides",
    "read_lines",
    "sweeps_checked_by_preflight",
    "unknown_key",
]

#: The ``_target_`` of Hydra's default sweeper, whose expansion :func:`expand_sweep` reproduces.
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """``mia-bench``'s options as Hydra's own parser reads them, and what it could not read."""
    return get_args_parser().parse_known_args(list(argv))


@contextmanager
def config_dir(path: str) -> Iterator[None]:
    """Hydra initialised on the config folder ``path`` for the ``with`` block."""
    with initialize_config_dir(config_dir=path, version_base="1.3"):
        yield


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


def unknown_key(exc: BaseException) -> str | None:
    """The key of an override that names no key of the config (Hydra's ``use +key``), or None."""
    cause = exc.__cause__
    if isinstance(exc, ConfigCompositionException) and isinstance(
        cause, ConfigKeyError | ConfigAttributeError
    ):
        return cause.full_key or None
    return None


def parse_overrides(lines: Sequence[str]) -> list[Override]:
    """Parse overrides one by one, so that a refusal names the one that does not parse."""
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    parsed = []
    for line in lines:
        try:
            parsed += parser.parse_overrides([line])
        except HydraException as exc:
            raise ConfigError(f"cannot parse the override '{line}': {condense(exc)}") from None
    return parsed


def expand_sweep(lines: Sequence[str]) -> list[list[str]]:
    """Every job's overrides, in Hydra's order, as the basic sweeper expands ``lines``."""
    try:
        return BasicSweeper.split_arguments(parse_overrides(lines), None)[0]
    except HydraException as exc:
        raise ConfigError(condense(exc)) from None


class ComposeError(ConfigError):
    """Hydra could not compose a config; ``key`` is the unknown key it names, if that is why."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def compose(name: str, overrides: Sequence[str], hydra: bool = False) -> DictConfig:
    """Config ``name`` composed with ``overrides`` as Hydra composes a job; ComposeError if not."""
    try:
        return hydra_compose(config_name=name, overrides=list(overrides), return_hydra_config=hydra)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ComposeError(condense(exc), unknown_key(exc)) from None


def apply_overrides(cfg: DictConfig, lines: Sequence[str]) -> DictConfig:
    """A copy of composed ``cfg`` with the value overrides ``lines`` set, as Hydra sets them.

    Hydra composes a job from its defaults list, then applies the overrides that are not config
    group choices with ``ConfigLoaderImpl._apply_overrides_to_config``, in struct mode. Calling
    that same function on a copy of a composed config gives the job's config without composing
    it again from the files (a sweep's jobs differ only in their swept values).
    """
    job = copy.deepcopy(cfg)
    OmegaConf.set_struct(job, True)
    try:
        ConfigLoaderImpl._apply_overrides_to_config(parse_overrides(lines), job)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ComposeError(condense(exc), unknown_key(exc)) from None
    return job


def group_choice(line: str) -> tuple[str, list[str]] | None:
    """``(group, options)`` of a plain choice of config group options (``defense=topk``,
    ``defense=[a,b]``); None for anything else (an append, a deletion, a package, a sweep)."""
    (override,) = parse_overrides([line])
    value = override.value()
    if (
        override.is_add()
        or override.is_force_add()
        or override.is_delete()
        or override.package is not None
        or override.is_sweep_override()
        or override.is_hydra_override()
    ):
        return None
    options = value if isinstance(value, list) else [value]
    if not options or not all(isinstance(option, str) for option in options):
        return None
    return override.key_or_group, options


def _loader() -> ConfigLoader:
    return GlobalHydra.instance().config_loader()


def option_config(group: str, option: str) -> DictConfig | None:
    """What selecting ``option`` of config ``group`` merges into a config, ``{group: content}``,
    as Hydra's ``_load_single_config`` embeds it, when the file is that simple: it exists, has no
    defaults list, its package (its ``# @package`` header, else its folder) is ``group``, and no
    ConfigStore schema has its name. None otherwise (then compose the config whole).
    """
    path = f"{group}/{option}"
    repository = _loader().repository  # type: ignore[attr-defined]
    try:
        result = repository.load_config(path)
    except (HydraException, ConfigLoadError, OmegaConfBaseException):
        return None
    if result is None or result.is_schema_source or result.defaults_list:
        return None
    try:
        schema = repository.get_schema_source().load_config(ConfigSource._normalize_file_name(path))
    except (ConfigLoadError, MissingConfigException):
        schema = None
    if schema is not None:
        return None
    package = (result.header or {}).get("package") or path.rsplit("/", 1)[0].replace("/", ".")
    if package == "_group_":
        package = path.rsplit("/", 1)[0].replace("/", ".")
    if package != group.replace("/", "."):
        return None
    embedded = ConfigLoaderImpl._embed_result_config(result, package).config
    return embedded if isinstance(embedded, DictConfig) else None


def add_options(cfg: DictConfig, options: Sequence[DictConfig]) -> DictConfig:
    """A copy of composed ``cfg`` with the options' configs (:func:`option_config`) merged in,
    in order, as Hydra merges each file of a defaults list (before it sets struct mode)."""
    job = copy.deepcopy(cfg)
    with open_dict(job):
        for option in options:
            job.merge_with(option)
    return job


@dataclass(frozen=True)
class Line:
    """One override as Hydra reads it, without Hydra's types.

    ``choice``: Hydra treats it as a config group choice (``defense=topk``, ``+experiment=x``) or
    a Hydra setting (``hydra.*``, ``hydra/launcher=joblib``), which select files; otherwise it sets
    a value (``defense.topk.k=3``) once the files are composed. ``adds``: ``+key``/``++key``.
    """

    text: str
    key: str
    value: str
    choice: bool
    adds: bool
    sweep: bool
    hydra: bool


def read_lines(lines: Sequence[str]) -> list[Line]:
    """Parse ``lines`` and classify each as Hydra's defaults list does (``Overrides.__init__``).

    An override is a group choice when its key names a config group and its value is not a dict;
    everything else is applied as a value after composition. Needs :func:`config_dir`.
    """
    repository = GlobalHydra.instance().config_loader().repository  # type: ignore[attr-defined]
    read = []
    for override in parse_overrides(lines):
        group = repository.group_exists(override.key_or_group)
        choice = override.is_hydra_override() or (group and not isinstance(override.value(), dict))
        read.append(
            Line(
                text=override.input_line or "",
                key=override.key_or_group,
                value=(override.input_line or "").split("=", 1)[-1],
                choice=bool(choice),
                adds=override.is_add() or override.is_force_add(),
                sweep=override.is_sweep_override(),
                hydra=override.is_hydra_override(),
            )
        )
    return read


@contextmanager
def sweeps_checked_by_preflight() -> Iterator[None]:
    """Hydra's basic sweeper launches each batch without composing all its jobs first.

    ``Sweeper.validate_batch_is_legal`` composes every job of a batch before launching any, to
    fail early; the preflight (:func:`benchmark.cli.preflight.check_command_line`) has already
    composed and checked every job of a basic sweep, so Hydra's pass only repeats it: 7-9 s of
    the standard sweep's 13 s before its first job started. Each job is still composed by the
    launcher when it runs. Other sweepers, whose jobs the preflight does not see, keep it.
    """
    # Hydra's plugin scan loads its core plugins' modules anew, so the class it instantiates is
    # the one in sys.modules now (after the preflight composed), not the one imported above.
    sweeper = importlib.import_module(BasicSweeper.__module__).BasicSweeper
    own = sweeper.__dict__.get("validate_batch_is_legal")
    sweeper.validate_batch_is_legal = _checked_by_preflight
    try:
        yield
    finally:
        if own is None:
            del sweeper.validate_batch_is_legal
        else:
            sweeper.validate_batch_is_legal = own


def _checked_by_preflight(self: object, batch: Sequence[Sequence[str]]) -> None:
    """Every job of ``batch`` was composed and checked before Hydra ran."""
