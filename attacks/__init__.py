"""Membership inference attacks. Importing this package registers every attack of the suite."""

from attacks import lira, loss  # noqa: F401  (registration)
from attacks.base import ATTACKS, Attack, AttackerView, attacker_view, build_suite, register_attack

__all__ = ["ATTACKS", "Attack", "AttackerView", "attacker_view", "build_suite", "register_attack"]
