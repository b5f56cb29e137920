"""jaxbp: backpropagation in JAX, many networks at once.

The maths lives in :mod:`jaxbp.model` (forward, loss) and :mod:`jaxbp.backprop`
(the hand-derived backward pass).
"""

from jaxbp import backprop, model

__version__ = "0.1.0"
__all__ = ["backprop", "model", "__version__"]
