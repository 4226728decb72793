"""Your own training loop: ``training=custom training._target_=my_pkg.train.fit`` (issue 14).

The contract. For each of the ``K`` models of the configuration, one after another, the harness
builds the model (``model=...``, built-in or your own, initialised right after
``torch.manual_seed(seed)``) and calls::

    fit(model, features, labels, seed, device)

* ``model``: the untrained ``torch.nn.Module``, already on ``device``;
* ``features``: ``float32`` tensor ``[n, *input_shape]`` on ``device``, this model's members only
  (standardised with the pool's statistics); ``labels``: ``int64`` tensor ``[n]``, ``0..C-1``;
* ``seed``: this model's seed (use it for every random choice, so that a run reproduces);
* ``device``: the ``torch.device`` of ``training.device``.

``fit`` returns the trained module, or a *predict function* (a callable mapping a float32 batch
``[B, *input_shape]`` on ``device`` to logits ``[B, C]``), or either of them paired with the
epsilon its own DP accountant spent, ``(module, epsilon)``, which is logged as ``dp/epsilon``.
The harness then releases its outputs through the configured release-time defenses and runs
the attack suite as usual.

Training-time defenses act inside the harness's own loop, so they are refused with a custom
loop (:func:`check_custom`), as is ``training.weight_decay``; the base optimiser settings
(``training.optimizer``, ``lr``, ``epochs``, ``batch_size``, ...) are not passed: the loop has its
own. A ``fit`` that raises marks the run FAILED with its reason (:class:`CustomLoopFailed`).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmark.data.custom import locate
from benchmark.data.pool import Pool
from benchmark.errors import ConfigError
from benchmark.models.base import build_model
from benchmark.models.custom import check_output
from benchmark.progress import progress as show_progress
from benchmark.protocol.membership import Membership
from benchmark.training.recipe import Recipe
from benchmark.training.steps import init_model
from benchmark.training.trained import Models, TrainingDiverged, resolve_device

KEY = "training._target_"
WHAT = "a function fit(model, features, labels, seed, device)"


#: The recipe fields a custom loop is given or may ignore: the model, the device, the engine, and
#: the base optimiser settings (the loop has its own). Any other field set away from its default
#: is a training-time defense, which only the harness's loops implement.
def _harness_only(recipe: Recipe) -> list[str]:
    """The recipe fields set that only the harness's own loop applies (a custom loop refuses
    them)."""
    applied = {
        "weight_decay": recipe.weight_decay != 0,
        "label_smoothing": recipe.label_smoothing != 0,
        "dp": recipe.dp is not None,
        "hooks": bool(recipe.hooks),
    }
    return [name for name, on in applied.items() if on]


class CustomLoopFailed(TrainingDiverged):
    """The custom training loop raised while training: the run is recorded as failed."""


class PredictFunction(nn.Module):
    """A predict function returned by a custom loop, seen as a module (for :class:`Models`)."""

    def __init__(self, predict: Callable[[torch.Tensor], Any]) -> None:
        super().__init__()
        self.predict = predict

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(self.predict(x), dtype=torch.float32)


def check_custom(recipe: Recipe, pool: Pool) -> None:
    """Refuse, before training, what a custom loop (or a custom model under DP-SGD) cannot do."""
    if recipe.model == "custom" and recipe.dp is not None:
        check_private(
            build_model(recipe.model, pool.input_shape, pool.num_classes, **recipe.model_options)
        )
    if recipe.engine == "custom":
        locate(KEY, recipe.loop, WHAT)
        harness_only = _harness_only(recipe)
        if harness_only:
            raise ConfigError(
                f"training=custom runs your own loop, which cannot apply recipe.{harness_only[0]} "
                "(a training-time defense or option of the harness's loop): remove that "
                "defense, or implement it in your loop; release-time defenses still apply"
            )


def check_private(model: nn.Module) -> None:
    """Opacus's ``ModuleValidator`` verdict on a custom model under DP-SGD, as one ConfigError."""
    # Opacus takes seconds to import: only DP runs of a custom model pay for it.
    from opacus.validators import ModuleValidator

    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        # Opacus explains at length; its first sentence names the layer and the problem.
        detail = "; ".join(str(e).splitlines()[0].split(". ")[0] for e in errors)
        raise ConfigError(
            f"defense=dpsgd cannot train model._target_ through Opacus: {detail} "
            "(e.g. replace BatchNorm with GroupNorm)"
        )


def _unpack(out: Any, k: int, target: str) -> tuple[nn.Module, float | None]:
    epsilon = None
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], numbers.Real):
        out, epsilon = out[0], float(out[1])
    if isinstance(out, nn.Module):
        return out, epsilon
    if callable(out):
        return PredictFunction(out), epsilon
    raise ConfigError(
        f"{KEY}={target} returned {type(out).__name__} for model {k}: return the trained "
        "nn.Module, a predict function, or (either of them, epsilon)"
    )


def train_custom(
    recipe: Recipe, pool: Pool, membership: Membership, progress: bool = True
) -> Models:
    """Train every model with the loop ``training._target_`` names (see the module docstring)."""
    fit = locate(KEY, recipe.loop, WHAT)
    target = str(recipe.loop)
    device = resolve_device(recipe.device)
    modules, epsilons = [], []
    for k in show_progress(range(membership.n_models), "training", "model", enabled=progress):
        members, seed = membership.members(k), int(membership.seeds[k])
        model = init_model(recipe, pool, seed).to(device)
        x = torch.as_tensor(pool.x[members], device=device)
        y = torch.as_tensor(pool.y[members], device=device)
        try:
            out = fit(model, x, y, seed, device)
        except (ConfigError, TrainingDiverged):
            raise
        except Exception as exc:
            raise CustomLoopFailed(
                f"{KEY}={target} raised {type(exc).__name__} on model {k}: {exc}"
            ) from exc
        module, epsilon = _unpack(out, k, target)
        check_output(module, pool.input_shape, pool.num_classes, f"{KEY}={target}'s model", device)
        modules.append(module.eval())
        epsilons.append(epsilon)
    reported = [e is not None for e in epsilons]
    if any(reported) and not all(reported):
        raise ConfigError(
            f"{KEY}={target} returned an epsilon for some models only: return (model, epsilon) "
            "for every model or for none"
        )
    spent = [float(e) for e in epsilons] if all(reported) else None
    # Training-time hooks are refused with a custom loop, so no member is ever held out.
    return Models(modules, device, spent, np.zeros_like(membership.matrix))
