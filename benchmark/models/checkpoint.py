"""Loading an already-trained model's weights safely (``protocol.target.checkpoint``).

The file is a ``state_dict`` saved with ``torch.save(model.state_dict(), path)``. It is read
with ``torch.load(weights_only=True)``, whose unpickler accepts only tensors and plain
containers, so a checkpoint can never execute code (a pickled module or any other object is
refused). Before the weights are copied into the configured architecture, every tensor is
checked by name and shape, so a mismatch names the first tensor that differs rather than
failing deep inside ``load_state_dict``.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from benchmark.errors import ConfigError

KEY = "protocol.target.checkpoint"
SAVE = "save it with torch.save(model.state_dict(), path)"


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The tensors in ``path``, read without running code; ConfigError if it is anything else."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{KEY}={path}: no such file; {SAVE}")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        raise ConfigError(
            f"{KEY}={path} is not a state dict that torch.load(weights_only=True) reads safely "
            f"({_reason(exc)}); {SAVE}"
        ) from None
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ConfigError(
            f"{KEY}={path} holds a {type(state).__name__}, not a state dict of tensors; {SAVE}"
        )
    return dict(state)


def _reason(exc: Exception) -> str:
    """The informative part of torch's refusal (what it would have had to unpickle)."""
    text = " ".join(str(exc).split())
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].split(". ")[0].split(" Check the")[0]
    return text.strip()[:160] or type(exc).__name__


def _first_mismatch(
    state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]
) -> str | None:
    """Which tensor first differs between the checkpoint and the model, in the model's order."""
    for name, tensor in expected.items():
        if name not in state:
            return f"the model's tensor '{name}' {list(tensor.shape)} is missing from the file"
        if state[name].shape != tensor.shape:
            return (
                f"tensor '{name}' is {list(state[name].shape)} in the file but "
                f"{list(tensor.shape)} in the model"
            )
    extra = [name for name in state if name not in expected]
    return f"the file has tensor '{extra[0]}', which the model has not" if extra else None


def load_checkpoint(path: str, model: nn.Module, architecture: str) -> nn.Module:
    """``model`` (the configured ``architecture``) with the weights of ``path``, in eval mode."""
    state = read_state_dict(path)
    mismatch = _first_mismatch(state, model.state_dict())
    if mismatch is not None:
        raise ConfigError(
            f"{KEY}={path} does not fit {architecture}: {mismatch}; set model= (and its options) "
            "to the architecture the checkpoint was trained with"
        )
    bad = [n for n, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise ConfigError(f"{KEY}={path}: tensor '{bad[0]}' holds NaN or infinite values")
    model.load_state_dict(state)
    return model.eval()
