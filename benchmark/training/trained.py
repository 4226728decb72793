"""The trained models of a configuration and the device they live on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from benchmark.errors import ConfigError
from benchmark.training.audit_canaries import CanaryTrace
from benchmark.training.input_canaries import InputCanaryTrace


class TrainingDiverged(RuntimeError):
    """Raised when a model's loss stops being finite; the run is recorded as failed."""


@dataclass
class Models:
    """The ``K`` trained models; ``logits(k, x)`` is the only way to run one."""

    modules: list[nn.Module]
    device: torch.device
    #: Per-model privacy spent (DP-SGD only), from the accountant.
    epsilons: list[float] | None
    #: bool ``[K, N]``: the members each model's training held out of fitting (a training
    #: hook's validation or reference set); all False when nothing was held out.
    held_out: np.ndarray
    #: The audit canaries' trace: what the gradient canaries saw (``audit=whitebox``), or the
    #: input canaries to query (``audit=blackbox``); None without an audit.
    canaries: CanaryTrace | InputCanaryTrace | None = None

    @property
    def n_models(self) -> int:
        return len(self.modules)

    @torch.no_grad()
    def logits(self, k: int, x: np.ndarray | torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """Logits of model ``k`` on ``x`` (numpy or tensor), on the CPU, in float32."""
        module = self.modules[k].eval()
        x = torch.as_tensor(x, dtype=torch.float32)
        parts = [
            module(x[i : i + batch_size].to(self.device)).cpu()
            for i in range(0, len(x), batch_size)
        ]
        return torch.cat(parts) if parts else torch.empty(0)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("training.device=cuda but no GPU is visible: use training.device=auto")
    return torch.device(name)
