"""``python -m jaxbp.compare <sweep-dir> --by <key>``: do the values of one swept key differ?

Among a sweep's ok jobs, those that differ only in ``<key>`` (equal in every other swept
key) are compared in pairs, on two questions:

- **how often seeds succeed**: the difference in success rate with Newcombe's hybrid score
  95% interval (built from the two Wilson intervals), and Fisher's exact test;
- **how fast seeds reach the target**: the log-rank test on epochs to target, where a seed
  that never reached it (or diverged) is censored at its job's epoch count, and each job's
  Kaplan–Meier median.

Each family of p-values is Holm-corrected across all pairs, so "differs" holds the chance
of any false alarm in that family at ``--alpha``. The table is printed and written to
``<sweep-dir>/compare.csv``. Results are read through :mod:`jaxbp.results` only. No JAX.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from jaxbp import pipes, results, stats

ALPHA = 0.05


class CompareError(Exception):
    """A sweep or key that cannot be compared as asked; the message is one line."""


class Job(NamedTuple):
    """One ok job of a sweep, as the comparison needs it."""

    num: int
    value: Any  # its value of the compared key
    seeds: pd.DataFrame
    epochs: int


# ---------------------------------------------------------------- which jobs
def sweep_keys(table: pd.DataFrame) -> list[str]:
    """The key columns of ``sweep.csv``: those before ``job`` (``jaxbp.sweep`` puts them first)."""
    columns = list(table.columns)
    return columns[: columns.index("job")]


def swept_keys(table: pd.DataFrame) -> list[str]:
    """The keys whose value varies among the sweep's ok jobs."""
    ok = table[table["status"] == "ok"]
    return [k for k in sweep_keys(table) if ok[k].nunique(dropna=False) > 1]


def _value(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "null" if np.isnan(value) else f"{value:g}"
    return str(value)


def _label(key: str, value) -> str:
    return f"{key}={_value(value)}"


def _read_job(sweep_dir: Path, row: pd.Series, by: str) -> Job | None:
    job = results.JobDir(sweep_dir / str(row["job_dir"]))
    why = job.why_incomplete()
    if why is not None:
        print(f"jaxbp.compare: job {row['job']} left out: {job.path} is not complete ({why})", file=sys.stderr)
        return None
    epochs = job.summary().get("config", {}).get("epochs")
    return Job(int(row["job"]), row[by], job.seeds(), int(epochs) if epochs else None)


def groups(sweep_dir: Path, by: str) -> list[tuple[dict[str, Any], list[Job]]]:
    """The sweep's ok jobs, grouped by every other swept key: ``[(those keys' values, jobs)]``.

    Raises:
        results.ResultsError: the dir has no readable ``sweep.csv``.
        CompareError: ``by`` is not a swept key.
    """
    table = results.SweepDir(sweep_dir).table()
    swept = swept_keys(table)
    if by not in swept:
        known = f"its swept keys are {', '.join(swept)}" if swept else "no key varies among its ok jobs"
        raise CompareError(f"{by!r} is not a swept key of {sweep_dir}: {known}")
    others = [k for k in swept if k != by]
    ok = table[table["status"] == "ok"]
    found = []
    for values, group in ok.groupby(others, dropna=False, sort=True) if others else [((), ok)]:
        values = values if isinstance(values, tuple) else (values,)
        jobs = [j for _, row in group.iterrows() if (j := _read_job(sweep_dir, row, by)) is not None]
        found.append((dict(zip(others, values)), jobs))
    return found


# ---------------------------------------------------------------- the tests
def compare_pair(a: Job, b: Job) -> dict[str, Any]:
    """Success rate and learning speed of job ``a`` against job ``b``."""
    n_a, n_b = len(a.seeds), len(b.seeds)
    k_a, k_b = int(a.seeds["converged"].sum()), int(b.seeds["converged"].sum())
    delta, low, high = stats.rate_difference(k_a, n_a, k_b, n_b)
    km_a, km_b = (stats.km_median(stats.kaplan_meier(j.seeds, j.epochs))[0] for j in (a, b))
    return {
        "job_a": a.num, "job_b": b.num, "num_seeds_a": n_a, "num_seeds_b": n_b,
        "success_rate_a": k_a / n_a, "success_rate_b": k_b / n_b,
        "success_diff": delta, "success_diff_ci_low": low, "success_diff_ci_high": high,
        "success_p": stats.success_p(k_a, n_a, k_b, n_b),
        "km_median_a": km_a, "km_median_b": km_b,
        "logrank_p": stats.logrank_p(stats.time_to_target(a.seeds, a.epochs),
                                     stats.time_to_target(b.seeds, b.epochs)),
    }


def _holm_column(p: pd.Series) -> pd.Series:
    """Holm-adjusted p-values over the defined ones (a test without information is left out)."""
    defined = p.notna()
    adjusted = pd.Series(np.nan, index=p.index)
    adjusted[defined] = stats.holm(p[defined].to_numpy(float))
    return adjusted


def compare(sweep_dir, by: str, alpha: float = ALPHA) -> pd.DataFrame:
    """Every pair of values of ``by`` within each group of otherwise equal jobs, with Holm's
    correction across all pairs, one family per question; one row per pair.

    Raises:
        results.ResultsError, CompareError: see :func:`groups`; or no group has two values.
    """
    sweep_dir = Path(sweep_dir)
    rows = []
    for values, jobs in groups(sweep_dir, by):
        for a, b in itertools.combinations(jobs, 2):
            if a.value != b.value:
                rows.append({**values, f"{by}_a": a.value, f"{by}_b": b.value, **compare_pair(a, b)})
    if not rows:
        raise CompareError(f"no two complete jobs of {sweep_dir} differ only in {by!r}")
    frame = pd.DataFrame(rows)
    for undefined_as_nan in ("km_median_a", "km_median_b", "logrank_p"):
        frame[undefined_as_nan] = frame[undefined_as_nan].astype(float)
    for test, question in (("success_p", "success_differs"), ("logrank_p", "speed_differs")):
        frame[f"{test}_holm"] = _holm_column(frame[test])
        frame[question] = frame[f"{test}_holm"] <= alpha
    return frame


# ---------------------------------------------------------------- the table
def _p(value) -> str:
    return "n/a" if pd.isna(value) else f"{value:.2g}" if value >= 1e-4 else "<1e-4"


def _points(share: float) -> str:
    """A difference of shares in percentage points, signed; never ``-0``."""
    text = f"{100 * share:+.0f}"
    return "0" if text in ("+0", "-0") else text


def _epochs(value) -> str:
    return "not reached" if pd.isna(value) else f"{value:.0f}"


def readable(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """The comparison as short strings, one row per pair."""
    others = list(frame.columns[: list(frame.columns).index(f"{by}_a")])
    table = pd.DataFrame({
        "jobs alike in": frame[others].apply(lambda r: " ".join(_label(k, r[k]) for k in others), axis=1)
        if others else "",
        by: [f"{_value(a)} vs {_value(b)}" for a, b in zip(frame[f"{by}_a"], frame[f"{by}_b"])],
        "success %": [f"{100 * a:.0f} vs {100 * b:.0f}" for a, b in
                      zip(frame["success_rate_a"], frame["success_rate_b"])],
        "difference [95% CI]": [f"{_points(d)} [{_points(lo)}, {_points(hi)}]" for d, lo, hi in
                                zip(frame["success_diff"], frame["success_diff_ci_low"],
                                    frame["success_diff_ci_high"])],
        "p Fisher (Holm)": [f"{_p(p)} ({_p(h)})" + (" *" if s else "") for p, h, s in
                            zip(frame["success_p"], frame["success_p_holm"], frame["success_differs"])],
        "KM median epochs": [f"{_epochs(a)} vs {_epochs(b)}" for a, b in
                             zip(frame["km_median_a"], frame["km_median_b"])],
        "p log-rank (Holm)": [f"{_p(p)} ({_p(h)})" + (" *" if s else "") for p, h, s in
                              zip(frame["logrank_p"], frame["logrank_p_holm"], frame["speed_differs"])],
    })
    return table.drop(columns=[] if others else ["jobs alike in"])


def _alpha(text: str) -> float:
    """A significance level: a number strictly between 0 and 1 (0 declares nothing, 1 everything)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number in (0, 1), such as 0.05")
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxbp.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir", type=Path, help="a sweep dir (it holds sweep.csv)")
    parser.add_argument("--by", required=True, help="the swept key to compare, e.g. optim or lr")
    parser.add_argument("--alpha", type=_alpha, default=ALPHA,
                        help=f"family-wise error rate of each Holm-corrected family, in (0, 1) (default {ALPHA})")
    args = parser.parse_args(argv)
    try:
        frame = compare(args.sweep_dir, args.by, args.alpha)
    except (results.ResultsError, CompareError) as err:
        print(f"jaxbp.compare: {err}", file=sys.stderr)
        return 2
    out = args.sweep_dir / "compare.csv"
    results.write_csv(out, frame)
    print(readable(frame, args.by).to_string(index=False))
    print(f"* differs at family-wise α = {args.alpha:g} after Holm's correction; "
          f"success: Fisher's exact test, speed: log-rank test (unsolved seeds censored). → {out}")
    return 0


if __name__ == "__main__":
    pipes.main(main)
