"""The shadow-model attack (Shokri et al. 2017, "Membership Inference Attacks Against Machine
Learning Models": shadow models and per-class attack models).

The attacker trains shadow models that imitate the target, labels their released outputs on their
own members "in" and on non-members "out", and trains one binary *attack model* per class on them.
The target's released output on a point of class ``y`` is then scored by the class-``y`` attack
model; the score is its predicted probability of "in".

Here the shadow models are the view's shadows, and the training rows are their released vectors on
the pool points of class ``y`` (as log-probabilities, floored at ``FLOOR``: a monotone rescaling
that tree models ignore and linear models and MLPs need). Only the view's balanced IN/OUT groups
are used, so every point contributes as many "in" rows as "out" rows and a classifier that learns
to recognise individual points cannot learn how many of a point's shadows trained on it (which
would reveal the target's membership, see :mod:`attacks.base`).

The attack models are scikit-learn classifiers named by ``classifier`` and configured by
``options`` (keyword arguments of the estimator).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits

from attacks.base import Attack, AttackerView, register_attack
from attacks.transforms import FLOOR
from benchmark.errors import ConfigError

#: Attack-model families and their defaults; ``options`` override the defaults.
CLASSIFIERS: dict[str, Callable[..., ClassifierMixin]] = {
    "gradient_boosting": lambda **kw: HistGradientBoostingClassifier(
        **{"max_iter": 50, "early_stopping": False, **kw}
    ),
    "logistic": lambda **kw: LogisticRegression(**{"max_iter": 1000, **kw}),
    "mlp": lambda **kw: MLPClassifier(**{"hidden_layer_sizes": (64,), "max_iter": 300, **kw}),
    "random_forest": lambda **kw: RandomForestClassifier(
        **{"n_estimators": 100, "min_samples_leaf": 5, **kw}
    ),
}


@dataclass
class ShadowParams:
    #: Attack-model family: logistic, gradient_boosting, mlp or random_forest.
    classifier: str = "logistic"
    #: Keyword arguments of the scikit-learn estimator (e.g. ``{max_iter: 100}``).
    options: dict[str, Any] = field(default_factory=dict)
    #: ``random_state`` of the attack models.
    seed: int = 0


def _features(outputs: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(outputs.astype(np.float64), FLOOR))


@register_attack("shadow")
class ShadowModelAttack(Attack):
    """Per-class attack models trained on the shadow models' outputs (Shokri et al. 2017)."""

    Params = ShadowParams
    needs_shadow_pairs = True

    def __init__(self, params: ShadowParams) -> None:
        super().__init__(params)
        if params.classifier not in CLASSIFIERS:
            raise ConfigError(
                f"attacks.suite.shadow.classifier={params.classifier} is unknown: "
                f"choose one of {sorted(CLASSIFIERS)}"
            )
        try:
            self.estimator = CLASSIFIERS[params.classifier](**params.options)
            if "random_state" in self.estimator.get_params():
                self.estimator.set_params(random_state=params.seed)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"attacks.suite.shadow.options={dict(params.options)} do not fit the "
                f"{params.classifier} classifier ({exc}): use that estimator's keyword arguments"
            ) from None

    def score(self, view: AttackerView) -> np.ndarray:
        target = _features(view.target_outputs)
        shadows = _features(view.shadow_outputs)
        scores = np.full(len(view.labels), 0.5)
        # Each fit is small (a few thousand rows): thread start-up costs more than it saves, and on
        # shared cores oversubscribed OpenMP threads make it tens of times slower.
        with threadpool_limits(limits=1):
            for y in np.unique(view.labels):
                scores[view.labels == y] = self._class_scores(view, y, target, shadows)
        return scores

    def _class_scores(
        self, view: AttackerView, y: int, target: np.ndarray, shadows: np.ndarray
    ) -> np.ndarray | float:
        """The class-``y`` attack model's probability of "in" for the class-``y`` points."""
        in_class = view.labels == y
        is_in = view.in_shadows[:, in_class]
        used = is_in | view.out_shadows[:, in_class]
        if not (is_in[used].any() and (~is_in[used]).any()):
            return 0.5  # no shadow evidence for this class
        model = clone(self.estimator).fit(shadows[:, in_class][used], is_in[used])
        return model.predict_proba(target[in_class])[:, 1]
