"""``hydra/sweeper=jaxbp_optuna``: see :mod:`.optuna_sweeper`; figures: :func:`plot_study`."""

from .plots import plot_study

__all__ = ["plot_study"]
