"""The training recipe: how every model of a configuration is trained.

A :class:`Recipe` is built from the resolved ``training`` and ``model`` configs
(:meth:`Recipe.from_config`; their defaults live in :mod:`benchmark.config.schema` only) and
changed by the defenses' ``recipe`` methods: torch's own options (weight decay, label smoothing,
dropout through ``model_options``), DP-SGD's parameters, or a training hook
(:mod:`benchmark.training.hooks`) appended to :attr:`Recipe.hooks`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from benchmark.config.schema import STORE_SETTINGS
from benchmark.training.accounting import DPParams
from benchmark.training.hooks import TrainingHook, needs_sequential


@dataclass(frozen=True)
class Recipe:
    """How every model of a configuration is trained (before the release hook).

    The fields up to ``device`` are the ``training`` config's, without defaults of their own
    (:meth:`from_config` fills them). The rest are off until a defense sets them, so an
    undefended recipe trains exactly as plain mini-batch SGD/Adam.
    """

    model: str
    model_options: dict[str, Any]
    optimizer: str
    lr: float
    momentum: float
    epochs: int
    batch_size: int
    weight_decay: float
    engine: str
    device: str
    #: ``training=custom``: the import path of your training loop (``training._target_``).
    loop: str | None
    #: torch's ``cross_entropy(label_smoothing=...)`` (the ``label_smoothing`` defense).
    label_smoothing: float = 0.0
    #: The training-time defenses' hooks, in the order the defenses were selected.
    hooks: tuple[TrainingHook, ...] = ()
    #: DP-SGD's budget and clipping norm (the ``dpsgd`` defense); None trains without privacy.
    dp: DPParams | None = None
    #: The canary audit of DP-SGD: ``whitebox`` (gradient canaries,
    #: :mod:`benchmark.training.audit_canaries`), ``blackbox`` (input canaries,
    #: :mod:`benchmark.training.input_canaries`) or ``none``.
    audit: str = "none"
    #: How many canaries the audit inserts per model; 0 inserts none.
    audit_canaries: int = 0

    @classmethod
    def from_config(cls, training: Mapping[str, Any], model: Mapping[str, Any]) -> Recipe:
        """The base recipe of resolved ``training`` and ``model`` configs (plain containers).

        Every ``training`` key is a recipe field of the same name; the model's keys other than
        ``name`` are its constructor's options. A ``training`` key without a field here fails
        loudly (TypeError) rather than being dropped; the store settings
        (:data:`~benchmark.config.schema.STORE_SETTINGS`) say where models come from, not how
        they train, and are not recipe fields.
        """
        options = {key: value for key, value in model.items() if key != "name"}
        skipped = ("_target_", *STORE_SETTINGS)
        fields = {key: value for key, value in training.items() if key not in skipped}
        loop = training.get("_target_")
        return cls(model=model["name"], model_options=options, loop=loop, **fields)

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **changes)

    def with_hook(self, hook: TrainingHook) -> Recipe:
        return self.replace(hooks=(*self.hooks, hook))

    def sequential_reason(self) -> str | None:
        """Why only the sequential engine can train this recipe (None when any engine can)."""
        return needs_sequential(self.hooks)
