"""Privacy defenses. Importing this package registers every built-in defense."""

from defenses import dpsgd, none, regularisation, truncation  # noqa: F401  (registration)
from defenses.base import DEFENSES, Defense, Release, build_defenses, register_defense

__all__ = ["DEFENSES", "Defense", "Release", "build_defenses", "register_defense"]
