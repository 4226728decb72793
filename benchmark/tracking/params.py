"""A configuration as MLflow params and tags: flattened keys, its hash, provenance tags."""

from __future__ import annotations

import hashlib
import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig

PACKAGES = ("mia-bench", "torch", "opacus", "scikit-learn", "numpy", "mlflow", "hydra-core")


def config_hash(config: dict[str, Any]) -> str:
    """A stable hash of the scientific content of a configuration (tracking excluded)."""
    science = {key: value for key, value in config.items() if key != "tracking"}
    return hashlib.sha256(json.dumps(science, sort_keys=True).encode()).hexdigest()[:16]


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
    tags = {
        "git_commit": _git("rev-parse", "HEAD") or "unknown",
        "git_dirty": str(bool(_git("status", "--porcelain", "--untracked-files=no"))).lower(),
        "config_hash": config_hash(config),
        "seed": str(config["seed"]),
        "defense": "+".join(config["defense"]),
        "suite_version": str(config["attacks"]["version"]),
        "dataset": config["data"]["name"],
        "model": config["model"]["name"],
        "attacker_knows_defense": str(config["attacker"]["knows_defense"]).lower(),
    }
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


def run_name(config: dict[str, Any]) -> str:
    return f"{config['data']['name']}-{config['model']['name']}-{'+'.join(config['defense'])}"
