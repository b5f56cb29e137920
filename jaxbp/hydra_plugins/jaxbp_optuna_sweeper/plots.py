"""Figures of a sweep dir's Optuna study, drawn with Optuna's matplotlib functions."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

# A forest fitted to fewer trials ranks the parameters by noise.
MIN_TRIALS_FOR_IMPORTANCE = 10


def plot_study(sweep_dir, out_dir) -> list[Path]:
    """Draws the optimisation history and, with at least two swept parameters, at least
    ``MIN_TRIALS_FOR_IMPORTANCE`` complete trials and values that differ, the parameter
    importances (fANOVA). Returns the PNGs written; none for a dir without ``study.db``.

    Args:
        sweep_dir: a sweep dir of ``hydra/sweeper=jaxbp_optuna``.
        out_dir: where the PNGs go (created if needed).
    """
    from .study import STUDY_FILE, STUDY_NAME, storage_url

    if not (Path(sweep_dir) / STUDY_FILE).is_file():
        return []
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # no display needed; leave a notebook's backend alone
    import matplotlib.pyplot as plt
    import optuna
    from optuna.exceptions import ExperimentalWarning
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as figures

    from jaxbp import results

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage_url(sweep_dir))
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return []
    target = study.user_attrs.get("objective", "objective")
    swept = {name for t in complete for name, d in t.distributions.items() if not d.single()}
    plots = [("optuna_history.png", figures.plot_optimization_history)]
    if len(swept) >= 2 and len(complete) >= MIN_TRIALS_FOR_IMPORTANCE and \
            len({t.value for t in complete}) > 1:
        plots.append(("optuna_importance.png", figures.plot_param_importances))
    written = []
    for name, plot in plots:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            figure = plot(study, target_name=target).figure
        figure.tight_layout()
        path = Path(out_dir) / name
        results.atomic_write(path, lambda tmp, fig=figure: fig.savefig(tmp, format="png", dpi=120))
        plt.close(figure)
        written.append(path)
    return written
