"""Datasets, all offline: generated, bundled with scikit-learn, or read from a user's file.

Each ``data=<name>`` option is a frozen dataclass here (``Xor``, ``Moons``, ``File``, ...)
that holds exactly the keys that option has, with its defaults, checks them in
``__post_init__``, and owns its loader: ``option.load(loss)`` returns a :class:`Dataset` of
NumPy arrays, split into train and test by ``seed``, standardised with train statistics when
asked, and with targets shaped for the loss: class labels become one 0/1 column for two
classes, and one-hot columns for more classes or for ``ce``. No JAX here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, List, NamedTuple, Optional  # noqa: UP035 (OmegaConf reads List[...])

import numpy as np

from jaxbp.checks import ConfigError, check_int, check_real, require


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


@dataclass(frozen=True)
class DataOption:
    """What every dataset has: how it is split and scaled (``data.*``)."""

    name: str = ""  # each option fixes it to its own name
    test_fraction: float = 0.0  # share of rows held out as the test split
    seed: int = 0  # fixes the split and any generated data, independently of training seeds
    standardize: bool = False  # zero mean, unit variance, fitted on the train split only
    targets: Optional[List[float]] = None  # noqa: UP006 - [low, high]: class targets 0/1 become these (e.g. [0.1, 0.9])

    def __post_init__(self):
        own = self.own_name()
        require(self.name == own, "data.name", self.name, f"{own!r}: choose another dataset with data=<name>")
        check_real("data.test_fraction", self.test_fraction, 0.0, 1.0)
        # scikit-learn's generators take a 32-bit seed.
        check_int("data.seed", self.seed, 0, 2**32 - 1)
        if self.targets is not None:
            pair = tuple(self.targets)
            # Accuracy and the 40-20-40 rule split outputs at 0.5, so the pair must straddle it.
            require(len(pair) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair)
                    and 0 <= pair[0] < 0.5 < pair[1] <= 1, "data.targets", self.targets,
                    "null or [low, high] with 0 <= low < 0.5 < high <= 1, e.g. [0.1, 0.9]")
            object.__setattr__(self, "targets", tuple(float(v) for v in pair))  # hashable, like the rest

    @classmethod
    def own_name(cls) -> str:
        return cls.__dataclass_fields__["name"].default

    def arrays(self) -> tuple[np.ndarray, np.ndarray, bool]:
        """``(x, y, classes)`` before encoding and splitting."""
        raise NotImplementedError

    def load(self, loss: str = "mse") -> Dataset:
        """Loads, encodes, splits (by ``seed``) and standardises (train statistics)."""
        x, y, classes = self.arrays()
        return split(self, x, scale_targets(self, encode_targets(y, classes, loss), classes, loss), classes)


@dataclass(frozen=True)
class Xor(DataOption):
    """The article's four points: y = x1 XOR x2."""

    name: str = "xor"

    def arrays(self):
        x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
        return x, np.array([0, 1, 1, 0]), True


@dataclass(frozen=True)
class Parity(DataOption):
    """All 2**bits binary inputs; y = 1 when an odd number of bits are set."""

    name: str = "parity"
    bits: int = 3  # input width

    def __post_init__(self):
        super().__post_init__()
        check_int("data.bits", self.bits, 1, 20, "an integer in [1, 20] (2**bits rows)")

    def arrays(self):
        codes = np.arange(2**self.bits)
        x = ((codes[:, None] >> np.arange(self.bits)[::-1]) & 1).astype(np.float64)
        return x, x.sum(axis=1).astype(int) % 2, True


@dataclass(frozen=True)
class Symmetry(DataOption):
    """All 2**bits binary vectors; y = 1 when the vector is its own mirror image
    (Rumelhart, Hinton & Williams 1986, Nature, Fig. 1: 6 bits, 8 of 64 symmetric)."""

    name: str = "symmetry"
    bits: int = 6

    def __post_init__(self):
        super().__post_init__()
        check_int("data.bits", self.bits, 2, 20, "an integer in [2, 20] (2**bits rows)")

    def arrays(self):
        codes = np.arange(2**self.bits)
        x = ((codes[:, None] >> np.arange(self.bits)[::-1]) & 1).astype(np.float64)
        return x, np.all(x == x[:, ::-1], axis=1).astype(int), True


@dataclass(frozen=True)
class Encoder(DataOption):
    """The N-M-N encoder/decoder (Rumelhart et al. 1986; Fahlman 1988): ``bits`` one-hot
    inputs, each to be reproduced at ``bits`` outputs through a narrower hidden layer."""

    name: str = "encoder"
    bits: int = 8  # N: inputs, outputs and patterns

    def __post_init__(self):
        super().__post_init__()
        # two bits would encode as one 0/1 output column; an encoder needs N outputs
        check_int("data.bits", self.bits, 3, 1024, "an integer in [3, 1024] (N one-hot patterns)")

    def arrays(self):
        return np.eye(self.bits), np.arange(self.bits), True


@dataclass(frozen=True)
class Generated2D(DataOption):
    """Two interleaved 2-D classes with Gaussian noise (``n_samples`` rows)."""

    n_samples: int = 200
    noise: float = 0.1
    test_fraction: float = 0.25
    standardize: bool = True

    def __post_init__(self):
        super().__post_init__()
        check_int("data.n_samples", self.n_samples, 2, 10_000_000)
        check_real("data.noise", self.noise, 0.0)


@dataclass(frozen=True)
class Moons(Generated2D):
    """scikit-learn's two half-moons."""

    name: str = "moons"

    def arrays(self):
        from sklearn.datasets import make_moons

        x, y = make_moons(self.n_samples, noise=self.noise, random_state=self.seed)
        return x, y, True


@dataclass(frozen=True)
class Circles(Generated2D):
    """scikit-learn's two concentric circles (inner radius half the outer)."""

    name: str = "circles"

    def arrays(self):
        from sklearn.datasets import make_circles

        x, y = make_circles(self.n_samples, noise=self.noise, factor=0.5, random_state=self.seed)
        return x, y, True


@dataclass(frozen=True)
class Spirals(Generated2D):
    """jaxbp's two interleaved arms, r = θ, each half of ``n_samples``."""

    name: str = "spirals"

    def arrays(self):
        rng = np.random.default_rng(self.seed)
        per_arm = self.n_samples // 2
        theta = np.sqrt(rng.uniform(0, 1, per_arm)) * 3 * np.pi
        arm = np.stack([theta * np.cos(theta), theta * np.sin(theta)], axis=1) / (3 * np.pi)
        x = np.concatenate([arm, -arm]) + rng.normal(0, self.noise, (2 * per_arm, 2))
        return x, np.repeat([0, 1], per_arm), True


@dataclass(frozen=True)
class Bundled(DataOption):
    """A dataset bundled with scikit-learn (offline), split and standardised by default."""

    LOADER: ClassVar[str] = ""
    test_fraction: float = 0.25
    standardize: bool = True

    def arrays(self):
        import sklearn.datasets

        x, y = getattr(sklearn.datasets, self.LOADER)(return_X_y=True)
        return x.astype(np.float64), y, True


@dataclass(frozen=True)
class Digits(Bundled):
    name: str = "digits"
    LOADER: ClassVar[str] = "load_digits"


@dataclass(frozen=True)
class Iris(Bundled):
    name: str = "iris"
    LOADER: ClassVar[str] = "load_iris"


@dataclass(frozen=True)
class BreastCancer(Bundled):
    name: str = "breast_cancer"
    LOADER: ClassVar[str] = "load_breast_cancer"


@dataclass(frozen=True)
class Wine(Bundled):
    name: str = "wine"
    LOADER: ClassVar[str] = "load_wine"


@dataclass(frozen=True)
class File(DataOption):
    """Your own data: a ``.csv`` (``target`` names a column; default the last) or a ``.npz``
    (arrays ``x`` and ``y``, or ``target`` naming the y array). Integer-valued 1-D targets
    are classes. :mod:`jaxbp.datafile` reads and checks it."""

    name: str = "file"
    path: Optional[str] = None
    target: Optional[str] = None
    standardize: bool = True

    def __post_init__(self):
        super().__post_init__()
        require(bool(self.path), "data.path", self.path, "the path of a .csv or .npz file")

    def arrays(self):
        from jaxbp import datafile

        try:
            return datafile.read(self.path, self.target)
        except datafile.DataFileError as err:
            raise ConfigError(err.key, err.value, err.allowed) from None


OPTIONS: dict[str, type[DataOption]] = {cls.own_name(): cls for cls in (
    Xor, Parity, Symmetry, Encoder, Moons, Circles, Spirals, Digits, Iris, BreastCancer, Wine, File)}


def option(name: str = "xor", **values) -> DataOption:
    """The option ``data=<name>`` with ``values`` over its defaults (the library's door)."""
    require(name in OPTIONS, "data", name, f"one of {sorted(OPTIONS)}")
    return OPTIONS[name](**values)


def encode_targets(y: np.ndarray, classes: bool, loss: str) -> np.ndarray:
    """Class labels -> (n, 1) 0/1 for two classes, one-hot for more or for ``ce``."""
    if not classes:
        if loss == "ce":
            raise ConfigError("loss", loss, "ce needs class targets; these are real-valued")
        return y.reshape(len(y), -1).astype(np.float64)
    labels, index = np.unique(y, return_inverse=True)
    if len(labels) < 2:
        raise ConfigError("data", f"{len(labels)} class", "data with at least two classes")
    if len(labels) == 2 and loss != "ce":
        return (index == 1).astype(np.float64)[:, None]  # the larger label is class 1
    return np.eye(len(labels))[index]


def scale_targets(cfg: DataOption, y: np.ndarray, classes: bool, loss: str) -> np.ndarray:
    """Encoded 0/1 class targets mapped to ``cfg.targets = (low, high)``: y ← low + (high − low)·y."""
    if cfg.targets is None:
        return y
    require(classes, "data.targets", list(cfg.targets), "null: these targets are real-valued, not 0/1 classes")
    require(loss != "ce", "data.targets", list(cfg.targets),
            "null with loss=ce (its targets are probabilities that sum to 1)")
    low, high = cfg.targets
    return low + (high - low) * y


def split(cfg: DataOption, x: np.ndarray, y: np.ndarray, classes: bool) -> Dataset:
    """Train/test split by ``cfg.seed`` and standardisation with train statistics."""
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


def load(cfg: DataOption, loss: str = "mse") -> Dataset:
    """``cfg.load(loss)``; kept as a function for callers that map over options."""
    return cfg.load(loss)
