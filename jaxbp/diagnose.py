"""``python -m jaxbp.diagnose <job_dir>``: why did a seed fail? Gradient, curvature, drift.

For every seed of a finished job, from its saved final weights θ and in float64, on the
job's own training objective ``E(θ) = data loss + l2·½ΣW² + l1·Σ|W|`` (:mod:`jaxbp.curvature`):

- ``loss`` = E(θ), ``grad_norm`` = ‖∇E(θ)‖, ``weight_norm`` = ‖θ‖ (every weight and bias);
- the exact Hessian's spectrum: ``hessian_min_eig``, ``hessian_max_eig``,
  ``hessian_neg_count`` (λ < −τ) and ``hessian_zero_count`` (|λ| ≤ τ), where
  ``τ = max(eig_rtol · max|λ|, eig_atol)`` per seed (``eig_tol``);
- for each seed the job left unsolved and finite, a **continuation**: the same optimiser at
  the same learning rate (its state restarted) trains on from θ for ``--epochs`` more epochs
  (default :data:`CONTINUE_FACTOR` × the job's epochs, at most :data:`MAX_CONTINUE_EPOCHS`),
  giving ``continued_loss``, ``continued_weight_norm``, ``continued_grad_norm`` and
  ``continued_solved`` (the job's success criterion, met after the extra epochs).

With ``drop = (loss − continued_loss) / loss`` and ``growth = (continued_weight_norm −
weight_norm) / weight_norm``, the first rule that holds gives the ``verdict``
(:class:`Thresholds` holds the numbers):

1. ``solved``: the job's own criterion was met (``converged`` in seeds.csv);
2. ``diverged``: the job flagged the seed diverged, or E(θ) is not finite;
3. ``slow``: the continuation solves it, or lowers its loss by at least ``slow_drop``;
4. ``saddle``: a clearly negative eigenvalue (``hessian_neg_count > 0``);
5. ``drifting``: the loss still falls (``drop > stall_drop``) while ‖θ‖ grows
   (``growth > growth_tol``): the escape towards infinite weights;
6. ``local_minimum``: ``grad_norm ≤ grad_tol``, no negative eigenvalue, and the
   continuation neither lowers the loss (``drop ≤ stall_drop``) nor moves ‖θ‖
   (``growth ≤ growth_tol``); strict when also ``hessian_zero_count == 0``;
7. ``unclear``: none of these.

The thresholds were fixed before any job was diagnosed; they are not tuned to any result.
The table goes to ``<job_dir>/diagnosis.csv``; ``python -m jaxbp.report <job_dir>`` then
draws ``diagnosis.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import numpy as np
import pandas as pd

from jaxbp import cores, results

if __name__ == "__main__":
    cores.configure_xla()  # before JAX starts; importing the library leaves XLA alone

CONTINUE_FACTOR = 10  # default continuation: this many times the job's epochs ...
MAX_CONTINUE_EPOCHS = 50_000  # ... but no more than this
CURVE_POINTS = 10  # continuation losses kept per seed (at evenly spaced epochs)
CONTINUE_CHUNK = 4_096  # seeds per continuation call
COLUMNS = ["seed", "loss", "grad_norm", "weight_norm", "hessian_min_eig", "hessian_max_eig",
           "hessian_neg_count", "hessian_zero_count", "verdict", "continued_loss", "continued_weight_norm",
           "continued_grad_norm", "continued_solved", "continued_epochs", "eig_tol", "converged", "diverged"]
VERDICTS = ("solved", "diverged", "slow", "saddle", "drifting", "local_minimum", "unclear")


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """The numbers behind the verdicts (module docstring), with why each has its value."""

    # Round-off in a float64 Hessian and its eigenvalues is ~1e-16·max|λ|; a million times
    # that is still far above it, and curvature below it is flat for any descent.
    eig_rtol: float = 1e-6
    eig_atol: float = 1e-12  # for a Hessian that is zero to round-off
    grad_tol: float = 1e-5  # ‖∇E‖ at or below this counts as stationary
    stall_drop: float = 1e-6  # a relative loss drop at or below this is no drop at all
    growth_tol: float = 1e-3  # a relative growth of ‖θ‖ at or below this is no growth
    slow_drop: float = 0.5  # the continuation halves the loss: learning at a normal rate


class DiagnoseError(Exception):
    """A job that cannot be diagnosed as asked; the message is one line."""


def continue_epochs(job_epochs: int) -> int:
    """The default continuation budget for a job of ``job_epochs`` epochs."""
    return min(CONTINUE_FACTOR * job_epochs, MAX_CONTINUE_EPOCHS)


# ---------------------------------------------------------------- continuation
def _continuation_config(cfg, epochs: int):
    """The job's config for training on: float64, no early stopping, no curves kept."""
    return dataclasses.replace(cfg, epochs=epochs, dtype="float64", patience=None, curve_seeds=0,
                               log_every=max(1, -(-epochs // CURVE_POINTS)), progress=False, kernel="xla",
                               distributed="off")


def _continue_fn(cfg, dataset):
    """The jitted ``(seeds (C,), params (C, ...)) -> (params, solved, diverged, curve)``."""
    import jax
    import jax.numpy as jnp

    from jaxbp import engine

    program = engine.make_program(cfg, dataset)
    hyper = engine.member_hyper(cfg)

    def one(seed, params):
        state = program.init(engine.seed_key(seed), hyper, params)
        state, curve = engine.run_blocks(program.step, state, jnp.int32(0), cfg.blocks, jnp.int32(cfg.epochs),
                                         cfg.sample_every, lambda loss: loss)
        params, metrics = program.finalize(state, cfg.epochs)
        return params, metrics["converged"], metrics["diverged"], curve

    return jax.jit(jax.vmap(one))


def continue_training(run: results.Run, seeds: np.ndarray, params, epochs: int) -> dict:
    """Trains ``seeds`` of ``run`` on from ``params`` (leading seed axis) for ``epochs``
    epochs with the job's optimiser, learning rate, penalties and batches, in float64.

    Returns:
        ``params`` (the continued params, leading seed axis), ``solved`` and ``diverged``
        ``(N,)`` bools, ``curve`` ``(N, T)``: the data loss at ``curve_epochs`` ``(T,)``.
    """
    import jax

    from jaxbp import curvature

    cfg = _continuation_config(run.cfg, epochs)
    seeds, n = np.asarray(seeds, np.uint32), len(seeds)
    chunk = min(n, CONTINUE_CHUNK)
    outs = []
    with jax.enable_x64(True):
        fn = _continue_fn(cfg, run.dataset)
        for start in range(0, n, chunk):
            rows = slice(start, start + chunk)
            part = jax.tree.map(lambda a, rows=rows: curvature.padded(np.asarray(a[rows], np.float64), chunk), params)
            outs.append(jax.device_get(fn(curvature.padded(seeds[rows], chunk), part)))
    new_params, solved, diverged, curve = jax.tree.map(lambda *parts: np.concatenate(parts)[:n], *outs)
    return {"params": new_params, "solved": solved.astype(bool), "diverged": diverged.astype(bool),
            "curve": curve, "curve_epochs": np.arange(cfg.blocks) * cfg.sample_every}


# ---------------------------------------------------------------- verdicts
def verdicts(frame: pd.DataFrame, thresholds: Thresholds = Thresholds()) -> pd.Series:
    """Each row's verdict by the rules of the module docstring, from the columns of
    ``diagnosis.csv`` alone (so a table read back gives the same verdicts)."""
    t = thresholds
    loss, after = frame["loss"].to_numpy(float), frame["continued_loss"].to_numpy(float)
    norm, norm_after = frame["weight_norm"].to_numpy(float), frame["continued_weight_norm"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        drop, growth = (loss - after) / loss, (norm_after - norm) / norm
    neg = frame["hessian_neg_count"].to_numpy(float)
    rules = [
        ("solved", frame["converged"].to_numpy(bool)),
        ("diverged", frame["diverged"].to_numpy(bool) | ~np.isfinite(loss)),
        ("slow", frame["continued_solved"].fillna(False).to_numpy(bool) | (drop >= t.slow_drop)),
        ("saddle", neg > 0),
        ("drifting", (drop > t.stall_drop) & (growth > t.growth_tol)),
        ("local_minimum", (frame["grad_norm"].to_numpy(float) <= t.grad_tol) & (neg == 0)
         & (drop <= t.stall_drop) & (np.abs(growth) <= t.growth_tol)),
    ]
    verdict = np.full(len(frame), "unclear", dtype=object)
    decided = np.zeros(len(frame), bool)
    for name, holds in rules:
        verdict[holds & ~decided] = name
        decided |= holds
    return pd.Series(verdict, index=frame.index, name="verdict")


# ---------------------------------------------------------------- the diagnosis
def _stacked_params(run: results.Run):
    params = run.dir.params()  # every seed, in seeds.csv's order (both are written per member)
    return [{k: np.asarray(v, np.float64) for k, v in layer.items()} for layer in params]


def diagnose(run: results.Run, epochs: int | None = None, thresholds: Thresholds = Thresholds()) -> pd.DataFrame:
    """The diagnosis of every seed of ``run`` (:func:`jaxbp.results.load_run`): one row per
    seed with :data:`COLUMNS`. Works in float64 whatever JAX's setting (it enters
    ``jax.enable_x64(True)`` itself). ``epochs``: the continuation budget (default
    :func:`continue_epochs`; 0 skips it). ``frame.attrs["seconds"]`` holds the timings.

    Raises:
        DiagnoseError: the job kept no params, or its network is too big for exact Hessians.
    """
    from jaxbp import curvature

    epochs = continue_epochs(run.cfg.epochs) if epochs is None else int(epochs)
    try:
        params = _stacked_params(run)
    except results.ResultsError as err:
        raise DiagnoseError(str(err)) from None
    x, y = run.dataset.x_train, run.dataset.y_train
    started = time.perf_counter()
    try:
        now = curvature.measure(run.spec, params, x, y, run.cfg.l1, run.cfg.l2)
    except ValueError as err:
        raise DiagnoseError(f"{run.dir.path}: {err}") from None
    spectrum = curvature.spectrum_counts(now["eigenvalues"], thresholds.eig_rtol, thresholds.eig_atol)
    curvature_s = time.perf_counter() - started
    n = len(run.seeds)
    nan = np.full(n, np.nan)
    frame = pd.DataFrame({
        "seed": run.seeds["seed"].to_numpy(np.int64), "loss": now["loss"], "grad_norm": now["grad_norm"],
        "weight_norm": now["weight_norm"], "hessian_min_eig": spectrum["min"], "hessian_max_eig": spectrum["max"],
        "hessian_neg_count": spectrum["neg_count"], "hessian_zero_count": spectrum["zero_count"],
        "verdict": "", "continued_loss": nan, "continued_weight_norm": nan.copy(),
        "continued_grad_norm": nan.copy(), "continued_solved": pd.array([pd.NA] * n, "boolean"),
        "continued_epochs": epochs, "eig_tol": spectrum["tol"],
        "converged": run.seeds["converged"].to_numpy(bool), "diverged": run.seeds["diverged"].to_numpy(bool)})
    todo = np.flatnonzero(~frame["converged"] & ~frame["diverged"] & np.isfinite(frame["loss"]))
    started = time.perf_counter()
    if epochs > 0 and len(todo):
        _add_continuation(frame, run, params, todo, epochs)
    frame["verdict"] = verdicts(frame, thresholds)
    frame.attrs["seconds"] = {"curvature": curvature_s, "continuation": time.perf_counter() - started,
                              "continued_seeds": int(len(todo)) if epochs > 0 else 0}
    return frame[COLUMNS]


def _add_continuation(frame: pd.DataFrame, run: results.Run, params, rows: np.ndarray, epochs: int) -> None:
    """Fills the ``continued_*`` columns of ``rows``."""
    from jaxbp import curvature

    picked = [{k: v[rows] for k, v in layer.items()} for layer in params]
    after = continue_training(run, frame["seed"].to_numpy()[rows], picked, epochs)
    measured = curvature.measure(run.spec, after["params"], run.dataset.x_train, run.dataset.y_train,
                                 run.cfg.l1, run.cfg.l2, hessian=False)
    frame.loc[rows, "continued_loss"] = measured["loss"]
    frame.loc[rows, "continued_weight_norm"] = measured["weight_norm"]
    frame.loc[rows, "continued_grad_norm"] = measured["grad_norm"]
    frame.loc[rows, "continued_solved"] = after["solved"] & ~after["diverged"]


def seed_spectrum(run: results.Run, seed: int) -> np.ndarray:
    """All ``P`` eigenvalues of one seed's Hessian, ascending (float64)."""
    from jaxbp import curvature

    params = [{k: np.asarray(v, np.float64)[None] for k, v in layer.items()} for layer in run.params(seed)]
    return curvature.measure(run.spec, params, run.dataset.x_train, run.dataset.y_train,
                             run.cfg.l1, run.cfg.l2)["eigenvalues"][0]


# ---------------------------------------------------------------- the printed summary
def verdict_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Seeds per verdict, with the medians that tell the verdicts apart."""
    table = frame.groupby("verdict").agg(
        seeds=("seed", "size"), loss=("loss", "median"), grad_norm=("grad_norm", "median"),
        weight_norm=("weight_norm", "median"), continued_loss=("continued_loss", "median"),
        continued_weight_norm=("continued_weight_norm", "median"), hessian_min_eig=("hessian_min_eig", "median"),
        hessian_max_eig=("hessian_max_eig", "median"))
    return table.reindex([v for v in VERDICTS if v in table.index])


def main(argv=None) -> int:
    from jaxbp.checks import ConfigError, check_int

    parser = argparse.ArgumentParser(prog="python -m jaxbp.diagnose", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("job_dir", help="a finished job's dir (it holds seeds.csv and params.npz)")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"continuation epochs for unsolved seeds (default {CONTINUE_FACTOR}× the job's, "
                             f"at most {MAX_CONTINUE_EPOCHS:,}; 0: none)")
    args = parser.parse_args(argv)
    try:
        if args.epochs is not None:
            check_int("--epochs", args.epochs, 0, 2**31 - 2**20)
        run = results.load_run(args.job_dir)
        frame = diagnose(run, args.epochs)
    except (results.ResultsError, DiagnoseError, ConfigError) as err:
        print(f"jaxbp.diagnose: {err}", file=sys.stderr)
        return 2
    path = run.dir.write_diagnosis(frame)
    seconds = frame.attrs["seconds"]
    with pd.option_context("display.width", 200, "display.float_format", "{:.4g}".format):
        print(verdict_table(frame).to_string())
    print(f"{len(frame)} seeds: gradient and Hessian in {seconds['curvature']:.2f} s; "
          f"{seconds['continued_seeds']} unsolved seeds trained on for {frame['continued_epochs'].iloc[0]:,} epochs "
          f"in {seconds['continuation']:.2f} s → {path}\n"
          f"python -m jaxbp.report {args.job_dir} draws diagnosis.png")
    return 0


if __name__ == "__main__":
    from jaxbp import pipes

    pipes.main(main)
