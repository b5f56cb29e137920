"""The ``optim=<name>`` options: one frozen dataclass per optax optimiser, owning its factory.

Each option holds exactly its own keys (so ``optim=sgd optim.b1=0.1`` is refused when the
config is composed), checks them in ``__post_init__``, and builds its optax transformation
with ``optax.inject_hyperparams``: every numeric hyperparameter, the learning rate included,
then lives in the optimiser state, so each member of a vmapped program carries its own
values and a new value never recompiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jaxbp.checks import check_choice, check_real, require


@dataclass(frozen=True)
class OptimOption:
    """What every optimiser has: its name (``optim=<name>``)."""

    name: str = ""  # each option fixes it to its own name

    def __post_init__(self):
        own = self.own_name()
        require(self.name == own, "optim.name", self.name, f"{own!r}: choose another optimiser with optim=<name>")

    @classmethod
    def own_name(cls) -> str:
        return cls.__dataclass_fields__["name"].default

    def hyperparams(self) -> dict[str, float]:
        """The traced hyperparameters besides the learning rate, by optax's argument names."""
        return {}

    def factory(self):
        """The optax constructor that ``inject_hyperparams`` wraps, and its static arguments."""
        raise NotImplementedError

    def transform(self) -> Any:
        """``optax.inject_hyperparams(factory)(learning_rate=1, **hyperparams)``; per-member
        values replace these in each member's state (see :func:`with_hyperparams`)."""
        import optax

        factory, static = self.factory()
        return optax.inject_hyperparams(factory, static_args=tuple(static))(
            learning_rate=1.0, **self.hyperparams(), **static)


@dataclass(frozen=True)
class SGD(OptimOption):
    """``W ← W − α·g``: the article's update."""

    name: str = "sgd"

    def factory(self):
        import optax

        return optax.sgd, {}


@dataclass(frozen=True)
class Momentum(OptimOption):
    """Heavy ball: ``v ← g + μ·v``, ``W ← W − α·v`` (optax.sgd with momentum)."""

    name: str = "momentum"
    momentum: float = 0.9

    def __post_init__(self):
        super().__post_init__()
        check_real("optim.momentum", self.momentum, 0.0, 1.0)

    def hyperparams(self):
        return {"momentum": self.momentum}

    def factory(self):
        import optax

        return optax.sgd, {"nesterov": self.name == "nesterov"}


@dataclass(frozen=True)
class Nesterov(Momentum):
    """Nesterov momentum: ``v ← g + μ·v``, ``W ← W − α·(g + μ·v)``."""

    name: str = "nesterov"


@dataclass(frozen=True)
class Adam(OptimOption):
    """Adam (Kingma & Ba 2015) with bias correction."""

    name: str = "adam"
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self):
        super().__post_init__()
        check_real("optim.b1", self.b1, 0.0, 1.0)
        check_real("optim.b2", self.b2, 0.0, 1.0)
        check_real("optim.eps", self.eps, 0.0, low_open=True)

    def hyperparams(self):
        return {"b1": self.b1, "b2": self.b2, "eps": self.eps}

    def factory(self):
        import optax

        return optax.adam, {}


@dataclass(frozen=True)
class RMSProp(OptimOption):
    """RMSProp: ``s ← decay·s + (1 − decay)·g²``, ``W ← W − α·g / (√s + eps)``."""

    name: str = "rmsprop"
    decay: float = 0.9  # of the squared-gradient average
    eps: float = 1e-8

    def __post_init__(self):
        super().__post_init__()
        check_real("optim.decay", self.decay, 0.0, 1.0)
        check_real("optim.eps", self.eps, 0.0, low_open=True)

    def hyperparams(self):
        return {"decay": self.decay, "eps": self.eps}

    def factory(self):
        import optax

        return optax.rmsprop, {}


OPTIONS: dict[str, type[OptimOption]] = {cls.own_name(): cls for cls in (
    SGD, Momentum, Nesterov, Adam, RMSProp)}


def option(name: str = "sgd", **values) -> OptimOption:
    """The option ``optim=<name>`` with ``values`` over its defaults (the library's door)."""
    check_choice("optim", name, sorted(OPTIONS))
    return OPTIONS[name](**values)


def with_hyperparams(opt_state, values: dict) -> Any:
    """``opt_state`` (from an injected transform's ``init``) with its hyperparameters replaced
    by ``values`` (same names, scalars or traced arrays), cast to each entry's dtype."""
    import jax.numpy as jnp

    current = opt_state.hyperparams
    return opt_state._replace(hyperparams={
        k: jnp.asarray(values[k], jnp.result_type(v)) if k in values else v
        for k, v in current.items()})
