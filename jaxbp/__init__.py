"""jaxbp: backpropagation in JAX, many networks at once.

The maths lives in :mod:`jaxbp.model` (forward, loss) and :mod:`jaxbp.backprop`
(the hand-derived backward pass). Submodules load on first use, so reading results
(:mod:`jaxbp.results`) never starts JAX.
"""

import importlib

__version__ = "0.2.0"
__all__ = ["backprop", "model", "__version__"]


def __getattr__(name: str):
    if name in ("backprop", "model", "engine", "runner", "config", "data", "results", "stats"):
        return importlib.import_module(f"jaxbp.{name}")
    raise AttributeError(f"module 'jaxbp' has no attribute {name!r}")
