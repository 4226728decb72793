"""Membership inference attacks. Importing this package registers every attack of the suite.

Every module of the package is imported, so adding an attack is one file (a class decorated with
:func:`register_attack`) plus its entry in ``conf/attacks/suite.yaml``.
"""

import importlib
import pkgutil

from attacks.base import (
    ATTACKS,
    Attack,
    AttackerView,
    attacker_view,
    balanced_groups,
    build_attack,
    build_suite,
    memoise_query,
    register_attack,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "ATTACKS",
    "Attack",
    "AttackerView",
    "attacker_view",
    "balanced_groups",
    "build_attack",
    "build_suite",
    "memoise_query",
    "register_attack",
]
