"""A search space written in Hydra's override syntax, as Optuna distributions.

``choice(a,b,c)`` (or ``a,b,c``) is categorical; ``range(start,stop[,step])`` is integers
(or floats) on Python's grid, stop excluded; ``interval(low,high)`` is a float in
``[low, high]``. ``tag(log, ...)`` samples a ``range`` or ``interval`` on a log scale. A
plain value is a fixed override given to every trial. Nothing here imports Optuna at module
level: Hydra's plugin scan imports this module in every Hydra app of the environment.
"""

# No `from __future__ import annotations`: Hydra's plugin scan runs this module before it
# is in sys.modules, where dataclasses look string annotations up.
import decimal
import math
from dataclasses import dataclass
from typing import Any

TAGS = ("log",)


class SpaceError(Exception):
    """A search space that cannot be sampled; the message names the override and the fix."""


@dataclass(frozen=True)
class Dimension:
    """One swept key: its override key (with any ``+``/``++`` prefix), Optuna's
    distribution, and for a choice the override text of each option."""

    key: str
    distribution: Any
    texts: tuple[str, ...] = ()

    def override(self, value: Any) -> str:
        """``key=value`` for a sampled value, in Hydra's syntax."""
        if self.texts:
            return f"{self.key}={self.texts[self.distribution.choices.index(value)]}"
        if isinstance(value, float) and getattr(self.distribution, "step", None):
            # A float range's grid point carries float noise (0.30000000000000004).
            value = float(f"{value:.12g}")
        if isinstance(value, float):
            return f"{self.key}={value!r}"  # repr round-trips, and Hydra reads it as a float
        return f"{self.key}={value}"

    def corners(self) -> list[Any]:
        """The values that bound this dimension: every choice, or both ends."""
        if self.texts:
            return list(self.distribution.choices)
        return [self.distribution.low, self.distribution.high]


@dataclass(frozen=True)
class Space:
    """The swept dimensions by Optuna parameter name, and the fixed overrides."""

    dimensions: dict[str, Dimension]
    fixed: tuple[str, ...]

    @property
    def distributions(self) -> dict[str, Any]:
        return {name: d.distribution for name, d in self.dimensions.items()}

    def sampled(self, params: dict[str, Any]) -> list[str]:
        """The overrides that set a trial's sampled values."""
        return [d.override(params[name]) for name, d in self.dimensions.items()]

    def overrides(self, params: dict[str, Any]) -> list[str]:
        """A trial's overrides: its sampled values, then the fixed overrides."""
        return self.sampled(params) + list(self.fixed)

    def corners(self) -> list[list[str]]:
        """Override lists that together reach every choice and both ends of every range:
        composing and checking these refuses a bad space before anything trains."""
        values = {name: d.corners() for name, d in self.dimensions.items()}
        count = max([len(v) for v in values.values()] + [1])
        return [self.overrides({name: v[i % len(v)] for name, v in values.items()}) for i in range(count)]


def parse(params: dict[str, Any], arguments: list[str]) -> Space:
    """The space from ``hydra.sweeper.params`` and the command line's task overrides (the
    command line wins for a key given in both).

    Raises:
        SpaceError: an override that does not parse, an unknown tag, or a sweep Optuna
            cannot sample.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    lines = [f"{k}={v}" for k, v in (params or {}).items()] + list(arguments)
    try:
        parsed = OverridesParser.create().parse_overrides(lines)
    except HydraException as err:
        raise SpaceError(str(err).splitlines()[0]) from None
    by_key: dict[str, Any] = {}
    for override in parsed:
        by_key[override.key_or_group] = override
    dimensions, fixed = {}, []
    for name, override in by_key.items():
        if override.is_sweep_override():
            dimensions[name] = _dimension(override)
        else:
            fixed.append(override.input_line)
    return Space(dimensions, tuple(fixed))


def _dimension(override) -> Dimension:
    sweep, line = override.value(), override.input_line
    tags = set(getattr(sweep, "tags", ()) or ())
    unknown = sorted(tags - set(TAGS))
    if unknown:
        raise SpaceError(f"{line}: unknown tag {', '.join(unknown)}; the only tag is 'log' "
                         "(e.g. lr='tag(log,interval(0.001,10))')")
    log = "log" in tags
    key = override.get_key_element()
    if override.is_interval_sweep():
        return Dimension(key, _interval(line, sweep, log))
    if override.is_range_sweep():
        return Dimension(key, _range(line, sweep, log))
    if override.value_type.name == "GLOB_CHOICE_SWEEP":
        raise SpaceError(f"{line}: glob() is not supported; list the options with choice(...)")
    if log:
        raise SpaceError(f"{line}: 'log' applies to range(...) and interval(...), not to a choice")
    return _choice(key, line, sweep.list)


def _interval(line: str, sweep, log: bool):
    from optuna.distributions import FloatDistribution

    if isinstance(sweep.start, int) and isinstance(sweep.end, int):
        # Hydra's int(interval(a,b)) cast: one form per thing, integers are range(a,b+1).
        raise SpaceError(f"{line}: for integers use range({sweep.start},{sweep.end + 1}) "
                         "(stop excluded, as in Python); interval(...) samples floats")
    low, high = float(sweep.start), float(sweep.end)
    _check_bounds(line, low, high, log)
    return FloatDistribution(low, high, log=log)


def _range(line: str, sweep, log: bool):
    from optuna.distributions import FloatDistribution, IntDistribution

    if all(isinstance(v, int) for v in (sweep.start, sweep.stop, sweep.step)):
        values = list(range(sweep.start, sweep.stop, sweep.step))
        if not values:
            raise SpaceError(f"{line}: the range is empty (its stop is excluded, as in Python)")
        low, high, step = min(values), max(values), abs(sweep.step)
        if log and step != 1:
            raise SpaceError(f"{line}: a log-scaled range needs step 1 (Optuna samples it log-uniformly)")
        _check_bounds(line, low, high, log)
        return IntDistribution(low, high, log=log, step=step)
    if log:
        raise SpaceError(f"{line}: a float range cannot be log-scaled; use tag(log,interval(low,high))")
    start, stop, step = (decimal.Decimal(str(v)) for v in (sweep.start, sweep.stop, sweep.step))
    if step <= 0 or stop <= start:
        raise SpaceError(f"{line}: a float range needs start < stop and a positive step")
    count = int(((stop - start) / step).to_integral_value(rounding=decimal.ROUND_CEILING))
    return FloatDistribution(float(start), float(start + (count - 1) * step), step=float(step))


def _check_bounds(line: str, low: float, high: float, log: bool) -> None:
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise SpaceError(f"{line}: needs finite bounds with low < high")
    if log and low <= 0:
        raise SpaceError(f"{line}: a log scale needs low > 0")


def _choice(key: str, line: str, options: list) -> Dimension:
    from hydra.core.override_parser.types import QuotedString, Transformer
    from optuna.distributions import CategoricalDistribution

    values = [v.text if isinstance(v, QuotedString) else v for v in options]
    if any(isinstance(v, (list, dict)) for v in values):
        raise SpaceError(f"{line}: a choice among lists or dicts cannot be sampled; "
                         "make each option a config group file instead")
    return Dimension(key, CategoricalDistribution(values), tuple(Transformer.str(v) for v in options))
