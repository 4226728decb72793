"""Privacy defenses. Importing this package registers every built-in defense.

Every module of the package is imported, so adding a defense is one file (a class decorated with
:func:`~defenses.base.register_defense`) plus its ``conf/defense/<name>.yaml``.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
