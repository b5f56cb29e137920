"""Datasets, all offline: generated, bundled with scikit-learn, or read from a user's file.

:func:`load` returns a :class:`Dataset` of NumPy arrays, split into train and test by
``data.seed``, standardised with train statistics when asked, and with targets shaped for
the loss: class labels become one 0/1 column for two classes, and one-hot columns for more
classes or for ``ce``.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxbp.config import ConfigError, DataConfig


class Dataset(NamedTuple):
    """Arrays ready for training; ``x_*``: (rows, features), ``y_*``: (rows, outputs)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray  # (0, features) when there is no test split
    y_test: np.ndarray
    classes: bool  # targets are class labels, so accuracy is defined

    @property
    def has_test(self) -> bool:
        return self.x_test.shape[0] > 0


def xor(cfg: DataConfig):
    """The article's four points: y = x1 XOR x2."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    return x, np.array([0, 1, 1, 0]), True


def parity(cfg: DataConfig):
    """All 2**bits binary inputs; y = 1 when an odd number of bits are set."""
    codes = np.arange(2**cfg.bits)
    x = ((codes[:, None] >> np.arange(cfg.bits)[::-1]) & 1).astype(np.float64)
    return x, x.sum(axis=1).astype(int) % 2, True


def moons(cfg: DataConfig):
    from sklearn.datasets import make_moons

    x, y = make_moons(cfg.n_samples, noise=cfg.noise, random_state=cfg.seed)
    return x, y, True


def circles(cfg: DataConfig):
    from sklearn.datasets import make_circles

    x, y = make_circles(cfg.n_samples, noise=cfg.noise, factor=0.5, random_state=cfg.seed)
    return x, y, True


def spirals(cfg: DataConfig):
    """Two interleaved arms, r = θ, each arm half of ``n_samples``, plus Gaussian noise."""
    rng = np.random.default_rng(cfg.seed)
    per_arm = cfg.n_samples // 2
    theta = np.sqrt(rng.uniform(0, 1, per_arm)) * 3 * np.pi
    arm = np.stack([theta * np.cos(theta), theta * np.sin(theta)], axis=1) / (3 * np.pi)
    x = np.concatenate([arm, -arm]) + rng.normal(0, cfg.noise, (2 * per_arm, 2))
    return x, np.repeat([0, 1], per_arm), True


def _sklearn_bundled(loader_name: str):
    def load_bundled(cfg: DataConfig):
        import sklearn.datasets

        x, y = getattr(sklearn.datasets, loader_name)(return_X_y=True)
        return x.astype(np.float64), y, True

    load_bundled.__doc__ = f"scikit-learn's bundled ``{loader_name}``."
    return load_bundled


def from_file(cfg: DataConfig):
    """A ``.csv`` (``target`` names a column; default the last) or a ``.npz`` (arrays
    ``x`` and ``y``, or ``target`` naming the y array). Integer-valued targets are classes."""
    path = Path(cfg.path).expanduser()
    if not path.is_file():
        raise ConfigError("data.path", cfg.path, "an existing .csv or .npz file")
    if path.suffix == ".npz":
        arrays = np.load(path)
        target = cfg.target or "y"
        if "x" not in arrays or target not in arrays:
            raise ConfigError("data.target", cfg.target,
                              f"the npz needs arrays 'x' and {target!r}; it has {list(arrays)}")
        x, y = arrays["x"], arrays[target]
    elif path.suffix == ".csv":
        import pandas as pd

        frame = pd.read_csv(path)
        target = cfg.target or frame.columns[-1]
        if target not in frame.columns:
            raise ConfigError("data.target", cfg.target, f"a column of {list(frame.columns)}")
        x, y = frame.drop(columns=[target]).to_numpy(), frame[target].to_numpy()
    else:
        raise ConfigError("data.path", cfg.path, "a file ending in .csv or .npz")
    x = np.asarray(x, dtype=np.float64)
    x = x.reshape(len(x), -1)
    y = np.asarray(y, dtype=np.float64)
    classes = y.ndim == 1 and bool(np.all(y == np.round(y)))
    return x, (y.astype(int) if classes else y), classes


LOADERS = {
    "xor": xor,
    "parity": parity,
    "moons": moons,
    "circles": circles,
    "spirals": spirals,
    "digits": _sklearn_bundled("load_digits"),
    "iris": _sklearn_bundled("load_iris"),
    "breast_cancer": _sklearn_bundled("load_breast_cancer"),
    "wine": _sklearn_bundled("load_wine"),
    "file": from_file,
}


def encode_targets(y: np.ndarray, classes: bool, loss: str) -> np.ndarray:
    """Class labels -> (n, 1) 0/1 for two classes, one-hot for more or for ``ce``."""
    if not classes:
        if loss == "ce":
            raise ConfigError("loss", loss, "ce needs class targets; these are real-valued")
        return y.reshape(len(y), -1)
    labels, index = np.unique(y, return_inverse=True)
    if len(labels) < 2:
        raise ConfigError("data", f"{len(labels)} class", "data with at least two classes")
    if len(labels) == 2 and loss != "ce":
        return (index == 1).astype(np.float64)[:, None]  # the larger label is class 1
    return np.eye(len(labels))[index]


def load(cfg: DataConfig, loss: str = "mse") -> Dataset:
    """Loads, encodes, splits (by ``cfg.seed``) and standardises (train statistics) a dataset."""
    if cfg.name not in LOADERS:
        raise ConfigError("data", cfg.name, f"one of {sorted(LOADERS)}")
    x, y, classes = LOADERS[cfg.name](cfg)
    y = encode_targets(y, classes, loss)
    n_test = int(round(cfg.test_fraction * len(x)))
    if len(x) - n_test < 1:
        raise ConfigError("data.test_fraction", cfg.test_fraction,
                          f"leaves no training rows out of {len(x)}")
    order = np.random.default_rng(cfg.seed).permutation(len(x)) if n_test else np.arange(len(x))
    train, test = order[n_test:], order[:n_test]
    x_train, x_test = x[train], x[test]
    if cfg.standardize:
        mean, std = x_train.mean(axis=0), x_train.std(axis=0)
        std = np.where(std > 0, std, 1.0)  # constant features stay constant, not NaN
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    return Dataset(cfg.name, x_train, y[train], x_test, y[test], classes)
