"""Black-box input canaries for auditing the private ensemble's DP-SGD (``audit=blackbox``).

Steinke, Nasr & Jagielski 2023 ("Privacy Auditing with One (1) Training Run", Section 6.2,
input-space canaries) and Nasr et al. 2023 ("Tight Auditing of Differentially Private Machine
Learning", Section 4, black-box canaries): ``m`` crafted training examples, each included in each
model's training set with probability 1/2, independently (seeded), and then Poisson-sampled into
every step with the real points' rate ``q``, exactly as a real member is. To DP-SGD an included
canary is one more record; the auditor sees only the trained models' outputs on the canaries
(:mod:`benchmark.evaluation.canary_scores` turns them into bounds).

A canary is made to be as distinguishable as a black-box point can be:

- **out of distribution**: its input lies along the pool's lowest-variance directions (the last
  right singular vectors of the centred inputs, a quarter of the input dimension), at the pool's
  typical norm. The real examples' gradients barely move the first layer along those directions,
  so what the model outputs on a canary is driven by that canary's own gradient steps and the
  noise, not by the data;
- **mislabelled**: its label is drawn uniformly, so an included canary can only be fitted by
  memorising it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: At most this many pool points enter the SVD that finds the low-variance directions.
SVD_POINTS = 2048


@dataclass(frozen=True)
class InputCanaryTrace:
    """What the black-box auditor needs: the inclusion bits and the canaries to query."""

    #: bool ``[K, m]``: which canaries each model included.
    included: np.ndarray
    #: float32 ``[m, *input_shape]``: the canaries' inputs.
    inputs: np.ndarray
    #: int64 ``[m]``: the canaries' (random) labels.
    labels: np.ndarray


def craft_inputs(
    x: np.ndarray, n_canaries: int, num_classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n_canaries`` inputs along the pool's lowest-variance directions, and random labels."""
    flat = np.asarray(x, np.float64).reshape(len(x), -1)
    sample = flat[rng.permutation(len(flat))[:SVD_POINTS]]
    centred = sample - sample.mean(axis=0)
    directions = np.linalg.svd(centred, full_matrices=False)[2]  # rows, by decreasing variance
    low = directions[-max(flat.shape[1] // 4, 1) :]
    unit = rng.standard_normal((n_canaries, len(low))) @ low
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    scale = float(np.median(np.linalg.norm(centred, axis=1)))
    inputs = (scale * unit).astype(np.float32).reshape(n_canaries, *x.shape[1:])
    return inputs, rng.integers(0, num_classes, size=n_canaries)


class InputCanaries:
    """Crafted canaries appended to the pool and Poisson-sampled into each model's batches."""

    def __init__(
        self,
        x: torch.Tensor,
        n_canaries: int,
        num_classes: int,
        n_models: int,
        sample_rate: float,
        seed: int,
    ) -> None:
        rng = np.random.default_rng([seed, 0xB1AC])
        inputs, labels = craft_inputs(x.cpu().numpy(), n_canaries, num_classes, rng)
        self.included = rng.random((n_models, n_canaries)) < 0.5
        self.inputs, self.labels = inputs, labels
        self.sample_rate = sample_rate
        self.first = len(x)  # the canaries' rows in the extended pool start here
        self.generator = torch.Generator(x.device).manual_seed(seed)
        self._included = torch.as_tensor(self.included, device=x.device)
        self._rows = torch.arange(n_canaries, device=x.device) + self.first

    def extend(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The pool's inputs and labels with the canaries' rows appended."""
        inputs = torch.as_tensor(self.inputs, dtype=x.dtype, device=x.device)
        labels = torch.as_tensor(self.labels, dtype=y.dtype, device=y.device)
        return torch.cat([x, inputs]), torch.cat([y, labels])

    def add_to_batch(
        self, index: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each model's batch ``index``/``mask [K, B]`` with its included canaries, each drawn
        with the real points' rate (from a generator of their own, so the real points' batches
        are those of an unaudited run)."""
        drawn = torch.rand(self._included.shape, generator=self.generator, device=index.device)
        drawn = (drawn < self.sample_rate) & self._included
        # Only as many columns as the model that drew the most canaries: drawn ones first.
        size = int(drawn.sum(dim=1).max())
        order = torch.argsort((~drawn).to(torch.uint8), dim=1, stable=True)[:, :size]
        rows = self._rows.expand_as(drawn).gather(1, order)
        return torch.cat([index, rows], dim=1), torch.cat([mask, drawn.gather(1, order)], dim=1)

    def trace(self) -> InputCanaryTrace:
        return InputCanaryTrace(self.included, self.inputs, self.labels)
