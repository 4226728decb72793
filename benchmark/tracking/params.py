"""A configuration as MLflow params and tags: flattened keys, its hash, provenance tags.

Params hold what changes results (the flattened configuration without ``tracking.*`` and the
model store's settings, plus the comparison params of :func:`comparison_params`); settings that
do not are tags.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import re
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig

from benchmark.config.schema import STORE_SETTINGS

PACKAGES = ("mia-bench", "torch", "opacus", "scikit-learn", "numpy", "mlflow", "hydra-core")


#: Params every configuration run carries, so that any two runs compare on the same axes.
COMPARISON_PARAMS = (
    "defense",
    "defense_option",
    "strength",
    "data",
    "model",
    "n_models",
    "canaries",
)
#: A strength preset's level: ``conf/defense/strength/<defense>_<level>.yaml``.
_PRESET = re.compile(r"strength/\w+?_(low|mid|high)\b")


def data_digest(data: dict[str, Any]) -> str:
    """The content digest of the dataset's files (sha256 over every file's bytes, sorted by
    path), or ``"builtin"`` for a dataset without files: two runs on different file contents
    never share a config hash."""
    path = data.get("path")
    if not path or not Path(path).exists():
        return "builtin"
    root = Path(path)
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(root) if root.is_dir() else file.name).encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def science(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration without the settings that never change a result: ``tracking.*`` and
    the model store's ``training.{cache,store,shard}`` (a run on reused models is the same
    configuration as one that trained them)."""
    kept = {key: value for key, value in config.items() if key != "tracking"}
    if "training" in kept:
        training = kept["training"]
        kept["training"] = {k: v for k, v in training.items() if k not in STORE_SETTINGS}
    return kept


def settings_tags(config: dict[str, Any]) -> dict[str, str]:
    """The settings :func:`science` leaves out, as tags (``tracking.uri``, ``training.cache``)."""
    tags = {f"tracking.{k}": str(v) for k, v in config.get("tracking", {}).items()}
    training = config.get("training", {})
    tags.update({f"training.{k}": str(training[k]) for k in STORE_SETTINGS if k in training})
    return tags


def config_hash(config: dict[str, Any]) -> str:
    """A stable hash of the scientific content of a configuration (:func:`science`) and of
    the dataset files' content (:func:`data_digest`)."""
    science_ = science(config)
    if (science_.get("audit") or {}).get("method", "none") == "none":
        science_.pop("audit", None)  # no audit: the hash of the runs recorded before audits
    science_["data_digest"] = data_digest(config["data"])
    return hashlib.sha256(json.dumps(science_, sort_keys=True).encode()).hexdigest()[:16]


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def launched_overrides() -> list[str] | None:
    """This Hydra job's command-line overrides (a sweep job's own values); None outside Hydra."""
    if not HydraConfig.initialized():
        return None
    return list(HydraConfig.get().overrides.task)


def reproducibility_tags(config: dict[str, Any]) -> dict[str, str]:
    """The tags reports depend on, MLflow's own source/user conventions, and the settings."""
    commit = _git("rev-parse", "HEAD") or "unknown"
    tags = {
        "git_commit": commit,
        "mlflow.source.git.commit": commit,
        "mlflow.source.name": "mia-bench",
        "mlflow.source.type": "LOCAL",
        "mlflow.user": getpass.getuser(),
        "git_dirty": str(bool(_git("status", "--porcelain", "--untracked-files=no"))).lower(),
        "config_hash": config_hash(config),
        "seed": str(config["seed"]),
        "defense": "+".join(config["defense"]),
        "suite_version": str(config["attacks"]["version"]),
        "dataset": config["data"]["name"],
        "model": config["model"]["name"],
        "attacker_knows_defense": str(config["attacker"]["knows_defense"]).lower(),
    }
    # Settings that do not change results are tags, never params.
    tags.update(settings_tags(config))
    overrides = launched_overrides()
    if overrides is not None:  # what was typed; reports also rebuild a command from the params
        tags["overrides"] = json.dumps(overrides)
    for package in PACKAGES:
        try:
            tags[f"version/{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            tags[f"version/{package}"] = "not installed"
    return tags


def leaves(config: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: the config's leaves under dotted keys."""
    if isinstance(config, dict) and config:
        found: dict[str, Any] = {}
        for key, value in config.items():
            found.update(leaves(value, f"{prefix}{key}."))
        return found
    return {prefix.rstrip("."): config}


def flatten(config: Any) -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": "1"}``: MLflow params are flat strings (JSON but for
    strings)."""
    return {
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in leaves(config).items()
    }


def _defense_label(config: dict[str, Any]) -> str:
    """``relaxloss alpha=1.0``: each defense with its scalar parameters."""
    parts = []
    for name, options in config["defense"].items():
        values = leaves(options) if isinstance(options, dict) and options else {}
        shown = " ".join(f"{k}={v}" for k, v in values.items() if not isinstance(v, (list, dict)))
        parts.append(f"{name} {shown}".strip())
    return " + ".join(parts) or "none"


def run_name(config: dict[str, Any]) -> str:
    """A run name that says what differs: ``relaxloss alpha=1.0 · 16 models · canaries=100 ·
    seed 0`` (the defense's parameters carry epsilon, k, ...)."""
    parts = [_defense_label(config), f"{config['protocol']['n_models']} models"]
    if config["protocol"].get("canaries"):
        parts.append(f"canaries={config['protocol']['canaries']}")
    parts.append(f"seed {config['seed']}")
    return " · ".join(parts)


def defense_option() -> str | None:
    """The Hydra choice of the defense group (``strength/relaxloss_high``), when Hydra runs."""
    if not HydraConfig.initialized():
        return None
    return HydraConfig.get().runtime.choices.get("defense")


def strength(option: str) -> str:
    """The protection level of the strength presets in a defense choice: ``high`` for
    ``strength/relaxloss_high``; ``none`` without a defense, ``other`` for a defense set
    otherwise. Short, so that a parallel-coordinates axis shows it whole (MLflow cuts labels)."""
    levels = _PRESET.findall(option)
    return "+".join(levels) or ("none" if option == "none" else "other")


def comparison_params(config: dict[str, Any]) -> dict[str, str]:
    """The same comparison axes on every configuration run (:data:`COMPARISON_PARAMS`)."""
    defense = "+".join(config["defense"]) or "none"
    option = defense_option() or defense
    return {
        "defense": defense,
        "defense_option": option,
        "strength": strength(option),
        "data": config["data"]["name"],
        "model": config["model"]["name"],
        "n_models": str(config["protocol"]["n_models"]),
        "canaries": str(config["protocol"]["canaries"]),
    }


def run_params(config: dict[str, Any]) -> dict[str, str]:
    """A configuration run's params: the flattened configuration but the settings
    (:func:`science`), and the comparison params (``seed``, ``attacker.knows_defense`` and the
    defenses' parameters are among the flattened keys)."""
    return {**flat_params(science(config)), **comparison_params(config)}


def flat_params(config: dict[str, Any]) -> dict[str, str]:
    """:func:`flatten` without the defenses that have no parameters: ``defense.label_only: {}``
    says nothing the ``defense`` param does not, and MLflow's compare view drew it as an axis of
    ``{}`` values. (An attack's empty mapping stays: it says the attack is in the suite.)"""
    return {k: v for k, v in flatten(config).items() if not empty_defense(k, v)}


def empty_defense(key: str, value: str) -> bool:
    return key.startswith("defense.") and value == "{}"


def sweep_name(config: Any) -> str:
    """The parent run's name: what the sweep varies, and when it ran (its folder's name):
    ``sweep defense × protocol.canaries · 12-30-05``."""
    swept = [str(key) for key in (config.hydra.sweeper.get("params") or {})]
    for override in config.hydra.overrides.task:
        key, _, value = override.partition("=")
        is_list = value.startswith(("[", "{"))  # defense=[a,b] composes, it sweeps nothing
        if ("," in value or value.startswith(("range(", "choice("))) and not is_list:
            key = key.lstrip("+~")
            swept += [] if key in swept else [key]
    return " · ".join(
        ["sweep " + (" × ".join(swept) or "(one job)"), Path(config.hydra.sweep.dir).name]
    )
