"""The static description of a network, and the names a config may choose: no JAX here.

:class:`Spec` says what a network is (widths, nonlinearities, loss); :mod:`jaxbp.model`
holds the functions those names stand for. Keeping the names apart lets a config be
validated, and a bad one refused, without starting JAX.
"""

from __future__ import annotations

import dataclasses
from typing import Any

ACTIVATION_NAMES = ("sigmoid", "tanh", "relu", "identity")  # model.ACTIVATIONS has their functions
OUTPUT_NAMES = ("sigmoid", "identity", "softmax")  # model.OUTPUTS has their functions
# Which output each loss may follow; mse is valid after any output.
LOSS_OUTPUTS: dict[str, tuple[str, ...]] = {
    "mse": OUTPUT_NAMES,
    "bce": ("sigmoid",),
    "ce": ("softmax",),
}
INIT_SCHEMES = ("normal", "uniform", "xavier", "he")
REDUCTIONS = ("mean", "sum")
BIAS_MODES = ("zeros", "same")

def check_name(what: str, value: Any, choices) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {sorted(choices)}")


@dataclasses.dataclass(frozen=True)
class Spec:
    """The static shape of a network: layer widths, nonlinearities and loss.

    Frozen and hashable, so it can be a static argument of ``jax.jit``.

    Attributes:
        sizes: layer widths ``(inputs, hidden..., outputs)``, at least 2 entries, each >= 1.
        activation: hidden nonlinearity, one of ``ACTIVATION_NAMES``.
        output: output nonlinearity, one of ``OUTPUT_NAMES``.
        loss: ``"mse"`` (any output), ``"bce"`` (sigmoid output) or ``"ce"`` (softmax output).
        reduction: ``"mean"`` over the batch's rows, or ``"sum"`` (the 1980s convention:
            the gradient, and so the effective learning rate, is n times the mean's).
        shortcuts: weights ``S`` from the inputs straight to the output layer:
            ``z_L = h_{L-1} W_L + b_L + x S`` (the 2-1-1 XOR network needs them).
    """

    sizes: tuple[int, ...]
    activation: str = "sigmoid"
    output: str = "sigmoid"
    loss: str = "mse"
    reduction: str = "mean"
    shortcuts: bool = False

    def __post_init__(self):
        sizes = tuple(self.sizes)
        if len(sizes) < 2:
            raise ValueError(
                f"sizes={sizes} needs at least 2 entries (inputs, outputs), e.g. (2, 3, 1)"
            )
        if any(isinstance(s, bool) or int(s) != s or s < 1 for s in sizes):
            raise ValueError(f"sizes={sizes}: every width must be an integer >= 1")
        object.__setattr__(self, "sizes", tuple(int(s) for s in sizes))
        check_name("activation", self.activation, ACTIVATION_NAMES)
        check_name("output", self.output, OUTPUT_NAMES)
        check_name("loss", self.loss, LOSS_OUTPUTS)
        if self.output not in LOSS_OUTPUTS[self.loss]:
            raise ValueError(
                f"loss={self.loss!r} cannot follow output={self.output!r}; "
                f"{self.loss!r} needs output in {list(LOSS_OUTPUTS[self.loss])}"
            )
        check_name("reduction", self.reduction, REDUCTIONS)
        if self.shortcuts and len(sizes) < 3:
            raise ValueError(f"shortcuts need a hidden layer; sizes={sizes} has none")
        if self.output == "softmax" and sizes[-1] < 2:
            # softmax over one unit is the constant 1: such a network can never learn.
            raise ValueError(
                f"output='softmax' needs at least 2 output units; sizes={sizes} has 1 "
                "(use output='sigmoid' for one output, or one-hot targets with 2 outputs)"
            )

    @property
    def num_layers(self) -> int:
        """Number of weight layers, ``len(sizes) - 1``."""
        return len(self.sizes) - 1
