"""Checks of the bounds that types alone cannot express (Hydra checks the types)."""

from __future__ import annotations

from omegaconf import DictConfig

from benchmark.errors import require

#: The largest seed: scikit-learn's ``random_state`` (the pool/test split) is a 32-bit seed.
MAX_SEED = 2**32 - 1


def validate(cfg: DictConfig) -> None:
    """Check the bounds that types alone cannot express; raise :class:`ConfigError` on the first."""
    p, t, d = cfg.protocol, cfg.training, cfg.data
    require(
        p.n_models >= 2 and p.n_models % 2 == 0,
        f"protocol.n_models must be even and at least 2 (got {p.n_models}): every pool point is a "
        f"member of exactly half the models; try protocol.n_models={max(2, p.n_models + 1)}",
    )
    require(
        p.n_targets is None or 1 <= p.n_targets <= p.n_models,
        f"protocol.n_targets must be between 1 and protocol.n_models={p.n_models} "
        f"(got {p.n_targets}); set protocol.n_targets=null to attack every model",
    )
    require(p.canaries >= 0, f"protocol.canaries must be >= 0 (got {p.canaries})")
    _validate_audit(cfg.audit)
    require(
        p.replicates >= 1,
        f"protocol.replicates must be >= 1 (got {p.replicates}): 1 runs the experiment once "
        "(bootstrap interval), R > 1 runs R independent replicates (interval over replicates)",
    )
    require(
        0.0 < d.test_fraction < 1.0, f"data.test_fraction must be in (0, 1), got {d.test_fraction}"
    )
    require(
        d.n_samples is None or d.n_samples >= 4, f"data.n_samples must be >= 4, got {d.n_samples}"
    )
    require(t.lr > 0, f"training.lr must be positive (got {t.lr})")
    require(t.epochs >= 1, f"training.epochs must be >= 1 (got {t.epochs})")
    require(t.batch_size >= 1, f"training.batch_size must be >= 1 (got {t.batch_size})")
    require(
        0 <= t.momentum < 1,
        f"training.momentum must be in [0, 1) (got {t.momentum}): it is the fraction of the "
        "previous step that SGD keeps; 0.9 is usual",
    )
    require(t.weight_decay >= 0, f"training.weight_decay must be >= 0 (got {t.weight_decay})")
    require(
        t.optimizer in ("sgd", "adam"),
        f"training.optimizer must be 'sgd' or 'adam' (got '{t.optimizer}')",
    )
    require(
        t.device in ("auto", "cpu", "cuda"),
        f"training.device must be auto, cpu or cuda (got '{t.device}')",
    )
    require(cfg.seed >= 0, f"seed must be a non-negative integer (got {cfg.seed})")
    require(
        cfg.seed <= MAX_SEED,
        f"seed must be at most 2**32-1={MAX_SEED} (got {cfg.seed}): scikit-learn's random_state, "
        "which splits the data, takes 32-bit seeds",
    )
    require(len(cfg.defense) > 0, "no defense selected: use defense=none for an undefended model")


def check_batch_size(training: DictConfig, n_train: int) -> None:
    """Refuse a batch larger than the ``n_train`` points each model trains on.

    A larger batch would silently be the whole training set (full-batch training) while the
    recorded ``training.batch_size`` said otherwise; asking for ``n_train`` says what runs.
    """
    require(
        training.batch_size <= n_train,
        f"training.batch_size={training.batch_size} exceeds the {n_train} points each model "
        f"trains on (half the pool): set training.batch_size <= {n_train} "
        f"({n_train} for full-batch training)",
    )


#: The values of ``audit.method`` (the files of ``conf/audit/``).
AUDIT_METHODS = ("none", "whitebox", "blackbox")


def _validate_audit(audit: DictConfig) -> None:
    require(
        audit.method in AUDIT_METHODS,
        f"audit.method must be one of {list(AUDIT_METHODS)} (got '{audit.method}'): "
        "select it with audit=whitebox or audit=blackbox",
    )
    require(
        audit.canaries >= 2,
        f"audit.canaries must be >= 2 (got {audit.canaries}): each model needs canaries both "
        "in and out; 1000 is the default",
    )
    require(
        0.0 < audit.confidence < 1.0,
        f"audit.confidence must be in (0, 1) (got {audit.confidence}), e.g. 0.95",
    )
