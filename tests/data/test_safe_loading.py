"""Loading a dataset never runs code from it (issue 16, item 1).

Each loader that reads a binary format gets a crafted file whose unpickling would create a marker
file through ``os.system``; the load is refused with one line naming the file, and the marker
never appears.
"""

from __future__ import annotations

import ast
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from benchmark.data.pool import load_raw
from benchmark.data.safe_pickle import load_pickle
from benchmark.errors import ConfigError
from tests.conftest import REPO, run_cli
from tests.data.test_data import data_config, write_cifar10


class Exploit:
    """Unpickling this object runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_the_exploit_really_runs_code_under_plain_pickle(tmp_path: Path) -> None:
    # guards the tests below: the payload is live, so its refusal proves something
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Exploit(marker)))
    assert marker.exists()


def _poison_cifar10(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
    marker = tmp_path / "ran"
    batch = {b"data": np.zeros((6, 3072), np.uint8), b"labels": Exploit(marker)}
    (folder / "data_batch_3").write_bytes(pickle.dumps(batch))
    return folder, marker


def test_cifar10_batch_with_code_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    folder, marker = _poison_cifar10(tmp_path)
    with pytest.raises(ConfigError, match="data_batch_3 is not a plain data pickle") as error:
        load_raw(data_config("cifar10", path=str(folder)))
    assert "posix.system" in str(error.value) and "\n" not in str(error.value)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_plain_numpy_pickles_still_load(tmp_path: Path, protocol: int) -> None:
    data = {b"data": np.arange(6, dtype=np.uint8).reshape(2, 3), b"labels": [1, 2], b"n": 3}
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    loaded = load_pickle(path)
    assert np.array_equal(loaded[b"data"], data[b"data"]) and loaded[b"labels"] == [1, 2]


def test_cifar10_batch_with_code_is_refused_by_the_cli(tmp_path: Path) -> None:
    folder, marker = _poison_cifar10(tmp_path)
    done = run_cli(
        ["data=cifar10", f"data.path={folder}", "tracking.enabled=false", "protocol.n_models=2"],
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "data_batch_3 is not a plain data pickle" in done.stderr
    assert not marker.exists()


def test_npz_with_a_pickled_object_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "d.npz"
    y = np.empty(1, dtype=object)
    y[0] = Exploit(marker)
    np.savez(path, X=np.zeros((1, 2), np.float32), y=y)  # numpy pickles object arrays
    with pytest.raises(ConfigError, match="is not a valid npz file") as error:
        load_raw(data_config("npz", path=str(path)))
    assert "Object arrays cannot be loaded" in str(error.value)
    assert not marker.exists()


def _calls(name: str) -> list[tuple[Path, ast.Call]]:
    found = []
    for folder in ("benchmark", "attacks", "defenses"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and ast.unparse(node.func) == name:
                    found.append((path, node))
    return found


def _keyword(call: ast.Call, key: str) -> object:
    for kw in call.keywords:
        if kw.arg == key:
            return ast.literal_eval(kw.value)
    return "absent"


def test_no_loader_in_the_code_base_can_unpickle_code() -> None:
    """``np.load`` never with ``allow_pickle=True`` (NumPy's default is False), every
    ``torch.load`` with ``weights_only=True``, and no bare ``pickle.load``."""
    np_loads = _calls("np.load")
    assert np_loads, "the scan found no np.load: it is looking in the wrong place"
    assert all(_keyword(c, "allow_pickle") in (False, "absent") for _, c in np_loads)
    assert all(_keyword(c, "weights_only") is True for _, c in _calls("torch.load"))
    assert not _calls("pickle.load") and not _calls("pickle.loads")
