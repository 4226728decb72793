"""The model zoo: one module per architecture, registered in :mod:`.base` on import.

Adding a model is one module here plus ``conf/model/<name>.yaml``.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
