"""Datasets: the pool and test split (:mod:`.pool`) and one module per dataset loader.

Importing the package registers every loader; adding a dataset is one module here (a function
decorated with :func:`~benchmark.data.pool.register_loader`) plus ``conf/data/<name>.yaml``.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
