"""Privacy defenses. Importing this package registers every built-in defense."""

from defenses import (  # noqa: F401  (registration)
    adversarial,
    dpsgd,
    memguard,
    none,
    regularisation,
    relaxloss,
    truncation,
)
from defenses.base import DEFENSES, Defense, Release, build_defenses, register_defense

__all__ = ["DEFENSES", "Defense", "Release", "build_defenses", "register_defense"]
