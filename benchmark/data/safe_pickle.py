"""A restricted unpickler for dataset files that come as pickles (CIFAR-10's python batches).

``pickle.load`` runs whatever a file tells it to: a crafted batch whose ``__reduce__`` names
``os.system`` executes it. :func:`load_pickle` admits only the globals that the official format
needs to rebuild dicts, lists, strings, bytes, numbers and NumPy arrays, and refuses any other
global before it is imported or called, with one line naming the file (Python docs, "Restricting
Globals", https://docs.python.org/3/library/pickle.html#restricting-globals).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from benchmark.errors import ConfigError

#: (module, name) pairs a CIFAR-10 batch may reference: NumPy's array reconstruction helpers,
#: under their NumPy 1 (``numpy.core``) and NumPy 2 (``numpy._core``) module names.
ALLOWED_GLOBALS = frozenset(
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
) | {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("collections", "OrderedDict"),
    # protocol 2 written by Python 3 spells bytes as _codecs.encode(str, "latin1"): data only
    ("_codecs", "encode"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, handle: Any, path: Path) -> None:
        super().__init__(handle, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise ConfigError(
                f"{self.path} is not a plain data pickle: it references {module}.{name}, which "
                "could run code when loaded; refusing it (use the official dataset files)"
            )
        return super().find_class(module, name)


def load_pickle(path: Path) -> Any:
    """Unpickle ``path`` allowing only plain data and NumPy arrays; ConfigError otherwise."""
    with open(path, "rb") as handle:
        return _RestrictedUnpickler(handle, path).load()
