"""Your own architecture: ``model=custom model._target_=my_pkg.nets.Net`` (issue 14).

``model._target_`` is the import path of any ``torch.nn.Module`` class or factory function. The
harness instantiates it with Hydra (``hydra.utils.instantiate``) as::

    Net(input_shape=(C, H, W) or (d,), num_classes=C, **extras)

where ``extras`` are the keys added as ``+model.<name>=<value>`` (the built-in models' options
``hidden``, ``channels`` and ``dropout`` are not passed). It is built once per model, right after
``torch.manual_seed(seed)``, so its initialisation is reproducible. On a zero probe batch its
output must be ``[batch, num_classes]`` logits; anything else is refused before training.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from hydra.utils import instantiate
from torch import nn

from benchmark.data.custom import call_target, locate
from benchmark.errors import ConfigError
from benchmark.models.base import MODEL_DEFAULTS, register_model

WHAT = "a torch.nn.Module class or factory taking input_shape and num_classes"


@register_model("custom")
def custom(input_shape: Sequence[int], num_classes: int, **options: object) -> nn.Module:
    """Instantiate ``model._target_`` and check that it maps inputs to ``num_classes`` logits."""
    target = str(options.get("_target_") or "")
    locate("model._target_", target, WHAT)
    if options.get("dropout"):
        raise ConfigError(
            "defense=dropout (model.dropout) inserts dropout into the built-in models only: with "
            "model=custom, add the dropout layer to your own module (a +model.<option> of it)"
        )
    extras = {key: value for key, value in options.items() if key not in MODEL_DEFAULTS}
    model = call_target(
        "model._target_",
        target,
        instantiate,
        {"_target_": target, **extras},
        input_shape=tuple(input_shape),
        num_classes=num_classes,
        _convert_="all",
    )
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model._target_={target} returned {type(model).__name__}, not {WHAT}")
    check_output(model, input_shape, num_classes, f"model._target_={target}")
    return model


@torch.no_grad()
def check_output(
    model: torch.nn.Module,
    input_shape: Sequence[int],
    num_classes: int,
    key: str,
    device: torch.device | None = None,
) -> None:
    """Refuse a model whose output on a zero batch ``[2, *input_shape]`` is not ``[2, C]``.

    ``device``: where the probe goes (default: where the model's parameters are). Run in eval
    mode (no dropout mask drawn, no running statistic updated), so that the probe changes
    neither the model nor the random stream its training then reads.
    """
    was_training = model.training
    model.eval()
    try:
        if device is None:
            param = next(model.parameters(), None)
            device = param.device if param is not None else None
        probe = torch.zeros(2, *input_shape, device=device)
        out = model(probe)
    except Exception as exc:
        raise ConfigError(
            f"{key} fails on inputs of shape [batch, {', '.join(map(str, input_shape))}] "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    finally:
        model.train(was_training)
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if shape != (2, num_classes):
        raise ConfigError(
            f"{key} outputs {shape} on a batch of 2, expected [2, {num_classes}] logits "
            f"(one per class of the data): make its last layer {num_classes} wide"
        )
