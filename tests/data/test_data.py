"""Each loader on a tiny fixture written in the dataset's real format, and its refusals."""

import pickle
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from benchmark.config.schema import DataConfig
from benchmark.data.pool import load_pool, load_raw
from benchmark.errors import ConfigError


def data_config(name: str, **fields) -> OmegaConf:
    return OmegaConf.merge(OmegaConf.structured(DataConfig), {"name": name, **fields})


def write_cifar10(folder: Path, per_batch: int = 6) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8),
            b"labels": rng.integers(0, 10, size=per_batch).tolist(),
            b"batch_label": name.encode(),
        }
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle)


def test_digits_is_embedded_and_image_shaped():
    pool = load_pool(data_config("digits"), seed=0)
    assert pool.kind == "image" and pool.input_shape == (1, 8, 8) and pool.num_classes == 10
    assert len(pool) + len(pool.y_test) == 1797


def test_split_is_by_seed_disjoint_even_and_scaled_on_the_pool():
    cfg = data_config("synthetic", n_samples=301, n_features=40, n_classes=3)
    a, b, c = load_pool(cfg, 0), load_pool(cfg, 0), load_pool(cfg, 1)
    assert np.array_equal(a.x, b.x) and not np.array_equal(a.x, c.x)
    assert len(a) % 2 == 0 and len(a) + len(a.y_test) == 301
    assert np.allclose(a.x.mean(axis=0), 0, atol=1e-5) and np.allclose(
        a.x.std(axis=0), 1, atol=1e-4
    )
    raw_x, _, _ = load_raw(cfg)
    pool_rows = {row.tobytes() for row in a.x}
    assert not any(row.tobytes() in pool_rows for row in a.x_test)  # no test point in the pool
    assert raw_x.shape == (301, 40)


def test_synthetic_is_binary_and_reproducible():
    cfg = data_config("synthetic", n_samples=50, n_features=9, n_classes=4)
    x1, y1, kind = load_raw(cfg)
    x2, y2, _ = load_raw(cfg)
    assert kind == "tabular" and set(np.unique(x1)) <= {0.0, 1.0}
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2) and y1.max() < 4


def test_npz(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.arange(40, dtype=np.float32).reshape(10, 4), y=np.arange(10) % 2)
    x, y, kind = load_raw(data_config("npz", path=str(path)))
    assert x.shape == (10, 4) and y.tolist() == [0, 1] * 5 and kind == "tabular"


def test_csv_with_named_label_column(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,target,b\n1,0,2\n3,1,4\n5,2,6\n7,0,8\n")
    x, y, _ = load_raw(data_config("csv", path=str(path), label_column="target"))
    assert x.tolist() == [[1, 2], [3, 4], [5, 6], [7, 8]] and y.tolist() == [0, 1, 2, 0]


def test_cifar10_python_batches(tmp_path):
    write_cifar10(tmp_path / "cifar-10-batches-py")
    x, y, kind = load_raw(data_config("cifar10", path=str(tmp_path / "cifar-10-batches-py")))
    assert x.shape == (36, 3, 32, 32) and kind == "image" and x.min() >= 0 and x.max() <= 1
    pool = load_pool(data_config("cifar10", path=str(tmp_path / "cifar-10-batches-py")), 0)
    assert pool.input_shape == (3, 32, 32)


def test_purchase100_file(tmp_path):
    path = tmp_path / "dataset_purchase"
    rows = [
        [c] + [int(b) for b in np.random.default_rng(c).integers(0, 2, 600)] for c in (1, 2, 100)
    ]
    path.write_text("\n".join(",".join(map(str, r)) for r in rows) + "\n")
    x, y, _ = load_raw(data_config("purchase100", path=str(path)))
    assert x.shape == (3, 600) and y.tolist() == [0, 1, 99]


def test_texas100_folder(tmp_path):
    folder = tmp_path / "texas" / "100"
    folder.mkdir(parents=True)
    (folder / "feats").write_text("0,1,1\n1,0,0\n")
    (folder / "labels").write_text("3\n1\n")
    x, y, _ = load_raw(data_config("texas100", path=str(folder)))
    assert x.tolist() == [[0, 1, 1], [1, 0, 0]] and y.tolist() == [2, 0]


@pytest.mark.parametrize("name", ["npz", "csv", "cifar10", "purchase100", "texas100"])
def test_missing_file_names_path_and_key(name):
    with pytest.raises(
        ConfigError, match=r"data\.path=/nonexistent/x does not exist: set data\.path"
    ):
        load_raw(data_config(name, path="/nonexistent/x"))
    with pytest.raises(ConfigError, match="set data.path"):
        load_raw(data_config(name))


def _bad_npz(tmp_path, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return data_config("npz", path=str(path))


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"X": np.zeros((3, 2))}, "missing arrays"),
        ({"X": np.zeros((3, 2)), "y": np.array([0, -1, 1])}, "labels must be integers"),
        ({"X": np.zeros((3, 2)), "y": np.array([0.5, 1, 1])}, "labels must be integers"),
        ({"X": np.array([[0.0, np.nan]] * 2), "y": np.array([0, 1])}, "NaN"),
        ({"X": np.zeros((3, 2)), "y": np.array([0, 1])}, "3 feature rows"),
        ({"X": np.zeros((0, 2)), "y": np.zeros(0)}, "no rows"),
    ],
)
def test_malformed_npz_is_refused_with_one_line(tmp_path, arrays, message):
    with pytest.raises(ConfigError, match=message) as error:
        load_raw(_bad_npz(tmp_path, **arrays))
    assert "\n" not in str(error.value)


def test_corrupt_files_are_refused(tmp_path):
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ConfigError, match="not a valid npz file"):
        load_raw(data_config("npz", path=str(corrupt)))
    text = tmp_path / "d.csv"
    text.write_text("label,a\n0,x\n")
    with pytest.raises(ConfigError, match="non-numeric"):
        load_raw(data_config("csv", path=str(text)))
    with pytest.raises(ConfigError, match="data.label_column=label is not a column"):
        text.write_text("y,a\n0,1\n")
        load_raw(data_config("csv", path=str(text)))
    folder = tmp_path / "cifar"
    folder.mkdir()
    with pytest.raises(ConfigError, match="missing"):
        load_raw(data_config("cifar10", path=str(folder)))


def test_unknown_dataset():
    with pytest.raises(ConfigError, match="unknown dataset data=imagenet"):
        load_raw(data_config("imagenet"))
