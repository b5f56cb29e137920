"""The ``optim=<name>`` options: one frozen dataclass per optax optimiser, owning its factory.

Each option holds exactly its own keys (so ``optim=sgd optim.b1=0.1`` is refused when the
config is composed), checks them in ``__post_init__``, and builds its optax transformation
with ``optax.inject_hyperparams``: every numeric hyperparameter, the learning rate included,
then lives in the optimiser state, so each member of a vmapped program carries its own
values and a new value never recompiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from jaxbp.checks import check_choice, check_real, require


@dataclass(frozen=True)
class OptimOption:
    """What every optimiser has: its name (``optim=<name>``)."""

    name: str = ""  # each option fixes it to its own name
    full_batch_only: ClassVar[bool] = False  # a batch method: refused with minibatches

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


# ---------------------------------------------------------------- Rprop
class RpropState(NamedTuple):
    """Per weight: its step size ``Δ``, the previous gradient (0 after a sign change) and
    the previous weight change ``Δw``."""

    step_sizes: Any
    prev_grads: Any
    prev_updates: Any


def rprop(learning_rate, eta_minus=0.5, eta_plus=1.2, min_step_size=1e-6, max_step_size=50.0,
          backtracking: bool = True):
    """Rprop (Riedmiller & Braun 1993) as an optax transformation; ``learning_rate`` is the
    initial step size ``Δ₀``. Per weight, with ``g = ∂E/∂w`` and ``g⁻`` the previous one::

        g·g⁻ > 0:  Δ ← min(η⁺Δ, Δmax),  Δw = −sign(g)·Δ
        g·g⁻ < 0:  Δ ← max(η⁻Δ, Δmin),  Δw = −Δw⁻ (backtracking) or 0 (without),  g ← 0
        g·g⁻ = 0:  Δw = −sign(g)·Δ

    ``backtracking=False`` is Igel & Hüsken's iRprop⁻, the variant ``optax.rprop`` means to
    implement (optax 0.2.8 emits each step one call late: google-deepmind/optax#1725).
    """
    import jax
    import jax.numpy as jnp
    import optax

    def init(params):
        zeros = optax.tree.zeros_like(params)
        return RpropState(optax.tree.full_like(params, learning_rate), zeros, zeros)

    def one(g, prev_g, step, prev_u):
        agree = g * prev_g
        step = jnp.where(agree > 0, jnp.minimum(step * eta_plus, max_step_size),
                         jnp.where(agree < 0, jnp.maximum(step * eta_minus, min_step_size), step))
        undo = -prev_u if backtracking else jnp.zeros_like(prev_u)
        update = jnp.where(agree < 0, undo, -jnp.sign(g) * step)
        return update, jnp.where(agree < 0, jnp.zeros_like(g), g), step

    def update(grads, state, params=None):
        del params
        out = jax.tree.map(one, grads, state.prev_grads, state.step_sizes, state.prev_updates)
        updates, prev_grads, steps = (jax.tree.map(lambda t, i=i: t[i], out, is_leaf=lambda t: isinstance(t, tuple))
                                      for i in range(3))
        return updates, RpropState(steps, prev_grads, updates)

    return optax.GradientTransformation(init, update)


@dataclass(frozen=True)
class Rprop(OptimOption):
    """Rprop (Riedmiller & Braun 1993): each weight moves by its own step size, grown by
    ``eta_plus`` while its gradient keeps its sign and shrunk by ``eta_minus`` when it flips;
    ``lr`` is the initial step size Δ₀ (the paper's 0.1). See :func:`rprop`."""

    name: str = "rprop"
    full_batch_only: ClassVar[bool] = True
    eta_plus: float = 1.2
    eta_minus: float = 0.5
    min_step_size: float = 1e-6
    max_step_size: float = 50.0
    backtracking: bool = True  # the 1993 paper's weight-backtracking; false: iRprop⁻

    def __post_init__(self):
        super().__post_init__()
        check_real("optim.eta_plus", self.eta_plus, 1.0, low_open=True)
        check_real("optim.eta_minus", self.eta_minus, 0.0, 1.0, low_open=True, high_open=True)
        check_real("optim.min_step_size", self.min_step_size, 0.0, low_open=True)
        check_real("optim.max_step_size", self.max_step_size, self.min_step_size)
        require(isinstance(self.backtracking, bool), "optim.backtracking", self.backtracking, "true or false")

    def hyperparams(self):
        return {"eta_plus": self.eta_plus, "eta_minus": self.eta_minus, "min_step_size": self.min_step_size,
                "max_step_size": self.max_step_size}

    def factory(self):
        return rprop, {"backtracking": self.backtracking}


# ---------------------------------------------------------------- Quickprop
GRADIENT_TERMS = ("same_sign", "always", "never")


class QuickpropState(NamedTuple):
    """Per weight: the previous slope ``S(t−1)`` and the previous step ``Δw(t−1)``."""

    prev_slopes: Any
    prev_steps: Any


def quickprop(learning_rate, max_growth=1.75, decay=1e-4, gradient_term: str = "same_sign"):
    """Quickprop (Fahlman 1988, CMU-CS-88-162) as an optax transformation; ``learning_rate``
    is ε. Per weight, with slope ``S = ∂E/∂w + decay·w``, previous slope ``P`` and previous
    step ``d``::

        d = 0:   Δw = −ε·S
        d ≠ 0:   Δw = q + [gradient term] −ε·S
                 q = S/(P − S)·d, or μ·d where that would be larger than μ times d
                   (S on d's downhill side at or past μ/(1+μ)·P, the "shrink factor"; and
                   where P = S, whose quadratic step is unbounded)

    The gradient term is added under ``gradient_term="same_sign"`` (Fahlman's rule) only
    while ``S`` still points the way ``d`` went (−S has ``d``'s sign); ``always`` or ``never``.
    """
    import jax
    import jax.numpy as jnp
    import optax

    shrink = max_growth / (1.0 + max_growth)

    def init(params):
        zeros = optax.tree.zeros_like(params)
        return QuickpropState(zeros, zeros)

    def one(g, w, p, d):
        s = g + decay * w
        downhill = -jnp.sign(s) == jnp.sign(d)  # S still asks for a step the way d went
        # "at or past the shrink factor", seen from d's direction: d·S <= shrink·d·P
        at_max = (d * s <= shrink * d * p) | (p == s)
        denominator = jnp.where(p == s, jnp.ones_like(s), p - s)
        quadratic = jnp.where(at_max, max_growth * d, d * s / denominator)
        gradient = {"same_sign": jnp.where(downhill, -learning_rate * s, 0.0),
                    "always": -learning_rate * s, "never": jnp.zeros_like(s)}[gradient_term]
        step = jnp.where(d == 0, -learning_rate * s, quadratic + gradient)
        return step, s

    def update(grads, state, params):
        out = jax.tree.map(one, grads, params, state.prev_slopes, state.prev_steps)
        steps, slopes = (jax.tree.map(lambda t, i=i: t[i], out, is_leaf=lambda t: isinstance(t, tuple))
                         for i in range(2))
        return steps, QuickpropState(slopes, steps)

    return optax.GradientTransformation(init, update)


@dataclass(frozen=True)
class Quickprop(OptimOption):
    """Quickprop (Fahlman 1988): a secant step to the minimum of a parabola through each
    weight's last two slopes, at most ``max_growth`` times the last step; ``lr`` is ε. See
    :func:`quickprop`."""

    name: str = "quickprop"
    full_batch_only: ClassVar[bool] = True
    max_growth: float = 1.75  # μ
    decay: float = 1e-4  # added to every slope: decay·w (biases too, as Fahlman's simulator)
    gradient_term: str = "same_sign"  # when −ε·S joins the quadratic step: same_sign | always | never

    def __post_init__(self):
        super().__post_init__()
        check_real("optim.max_growth", self.max_growth, 0.0, low_open=True)
        check_real("optim.decay", self.decay, 0.0)
        check_choice("optim.gradient_term", self.gradient_term, GRADIENT_TERMS)

    def hyperparams(self):
        return {"max_growth": self.max_growth, "decay": self.decay}

    def factory(self):
        return quickprop, {"gradient_term": self.gradient_term}


OPTIONS: dict[str, type[OptimOption]] = {cls.own_name(): cls for cls in (
    SGD, Momentum, Nesterov, Adam, RMSProp, Rprop, Quickprop)}


def option(name: str = "sgd", **values) -> OptimOption:
    """The option ``optim=<name>`` with ``values`` over its defaults (the library's door)."""
    check_choice("optim", name, sorted(OPTIONS))
    return OPTIONS[name](**values)


def init_state(option: OptimOption, params, values: dict) -> Any:
    """``option.transform().init(params)`` with ``values`` as its hyperparameters from the
    start (see :func:`with_hyperparams`): the inner state is built from them too, so one
    that reads a hyperparameter at init (Rprop's initial step sizes, ``lr``) gets the
    member's value, not the transform's placeholder."""
    state = with_hyperparams(option.transform().init(params), values)
    factory, static = option.factory()
    return state._replace(inner_state=factory(**static, **state.hyperparams).init(params))


def with_hyperparams(opt_state, values: dict) -> Any:
    """``opt_state`` (from an injected transform's ``init``) with its hyperparameters replaced
    by ``values`` (same names, scalars or traced arrays), cast to each entry's dtype."""
    import jax.numpy as jnp

    current = opt_state.hyperparams
    return opt_state._replace(hyperparams={
        k: jnp.asarray(values[k], jnp.result_type(v)) if k in values else v
        for k, v in current.items()})
