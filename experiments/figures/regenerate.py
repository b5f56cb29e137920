"""Regenerates every committed figure in ``experiments/figures/`` and every number the
README quotes from a cheap run, then rewrites the README's generated blocks with cogapp.

    python experiments/figures/regenerate.py                 # all of it: ~10 minutes on 2 cores
    python experiments/figures/regenerate.py --only atlas    # one part: quickstart, sweep, atlas, scaling
    python experiments/figures/regenerate.py --cog-only      # README blocks from regenerated.json alone

What it runs, each through the command line a user types, in a scratch dir (``--work``):

- ``quickstart``: ``python -m jaxbp.train`` (twice: the second line is the warm-cache one
  the README quotes);
- ``sweep``: ``python -m jaxbp.train -m +experiment=xor_lr_hidden`` and ``python -m
  jaxbp.report`` on it: ``xor_lr_hidden_success_rate.png``, ``xor_lr_hidden_final_loss.png``
  and the worked example's table and sentences;
- ``atlas``: ``python -m jaxbp.atlas`` with :data:`ATLAS_ARGS` at :data:`ATLAS_RESOLUTION`
  (``atlas_xor_221.png``), and ``python -m jaxbp.report <atlas> --zoom <box>`` 25× into
  the edge of the solved region nearest seed 0's own init (``atlas_xor_221_zoom.png``);
- ``scaling``: ``python -m jaxbp.report`` on the committed ``experiments/results/scaling_h200.csv``
  (``scaling_h200.png``). Only the drawing is regenerated: the measurements themselves need
  an H200 (``python -m jaxbp.bench --scaling`` on one), which this script does not have.

The figures it measures go to ``regenerated.json`` beside this file; the README's blocks
between ``[[[cog`` and ``[[[end]]]`` are rendered from that file by the functions below, so
``cog --check README.md`` (a default test) fails whenever the README and the record differ.
The benchmark's speed-ups (README, Performance) depend on the machine and are not rerun here.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

FIGURES = Path(__file__).resolve().parent
ROOT = FIGURES.parents[1]
RECORD = FIGURES / "regenerated.json"
README = ROOT / "README.md"
ATLAS_ARGS = ("hidden=2", "lr=0.5", "optim=momentum", "optim.momentum=0.9", "epochs=2000")
ATLAS_RESOLUTION = 1000
ZOOM = 25  # the zoom box is this many times narrower than the plane
TABLE_ROWS = ((1, 2), (1, 3), (1, 4), (1, 8), (10, 2))  # (lr, hidden) rows of the README's sweep.csv excerpt
TABLE_COLUMNS = ("lr", "hidden", "job", "status", "success_rate", "success_ci_low", "success_ci_high",
                 "epochs_to_target_km_median", "epochs_to_target_median_converged")
PARTS = ("quickstart", "sweep", "atlas", "scaling")


def _cli(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m module *args`` as a user runs it; a failure stops the regeneration."""
    print(f"$ python -m {module} {' '.join(args)}", flush=True)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, check=True, text=True,
                          stdout=subprocess.PIPE)


# ---------------------------------------------------------------- the runs
def quickstart(work: Path) -> dict:
    """The quick start's line: the default job, its second run (warm compilation cache)."""
    lines = [_cli("jaxbp.train", "progress=false", cwd=work).stdout.strip().splitlines()[-1] for _ in range(2)]
    return {"line": re.sub(r"→ .*outputs/", "→ outputs/", lines[-1])}


def sweep(work: Path) -> dict:
    """The worked example: the xor_lr_hidden sweep, its report's two figures, its rows."""
    import pandas as pd

    sweep_dir = work / "xor_lr_hidden"
    shutil.rmtree(sweep_dir, ignore_errors=True)
    start = time.perf_counter()
    _cli("jaxbp.train", "-m", "+experiment=xor_lr_hidden", f"hydra.sweep.dir={sweep_dir}", "progress=false",
         cwd=work)
    wall = time.perf_counter() - start
    _cli("jaxbp.report", str(sweep_dir), cwd=work)
    for name in ("success_rate", "final_loss"):
        shutil.copyfile(sweep_dir / "report" / f"{name}.png", FIGURES / f"xor_lr_hidden_{name}.png")
    full = pd.read_csv(sweep_dir / "sweep.csv")
    table = full[list(TABLE_COLUMNS)]
    rows = table.astype(object).where(table.notna(), None).to_dict(orient="records")  # strict JSON: null
    return {"wall_s": round(wall, 1), "num_seeds": int(full["num_seeds"].max()),
            "rows": json.loads(json.dumps(rows, default=float))}


def atlas(work: Path, resolution: int = ATLAS_RESOLUTION, zoom: bool = True) -> dict:
    """The atlas of the README, its map, and a zoom into the edge nearest seed 0's init."""
    atlas_dir = work / f"atlas_{resolution}"
    shutil.rmtree(atlas_dir, ignore_errors=True)
    _cli("jaxbp.atlas", *ATLAS_ARGS, f"atlas.resolution={resolution}", f"hydra.run.dir={atlas_dir}",
         "progress=false", cwd=work)
    record = describe_atlas(atlas_dir)
    if not zoom:
        return record
    shutil.copyfile(atlas_dir / "atlas.png", FIGURES / "atlas_xor_221.png")
    box = record["zoom_box"]
    _cli("jaxbp.report", str(atlas_dir), "--zoom", ",".join(f"{v:g}" for v in box), cwd=work)
    zoom_dir = next((atlas_dir / "zoom").iterdir())
    shutil.copyfile(zoom_dir / "report" / "atlas.png", FIGURES / "atlas_xor_221_zoom.png")
    return {**record, "zoom": describe_atlas(zoom_dir, zoom=False)}


def describe_atlas(atlas_dir: Path, zoom: bool = True) -> dict:
    """What the README says about an atlas, measured from its ``atlas.npz``: the share
    solved, where seed 0's init lies, the plateau loss of the starts that fail, and (for
    the full plane) the zoom box: 1/:data:`ZOOM` of the plane, centred on the solved
    point at the edge of the solved region that lies nearest the base point."""
    from scipy import ndimage

    arrays = dict(np.load(atlas_dir / "atlas.npz"))
    summary = json.loads((atlas_dir / "summary.json").read_text())
    solved, x, y = arrays["solved"], arrays["x"], arrays["y"]
    base = [float(v) for v in arrays["base_point"]]
    regions = ndimage.label(solved)[1]
    base_pixel = (int(np.argmin(np.abs(y - base[1]))), int(np.argmin(np.abs(x - base[0]))))
    edge = solved & ~ndimage.binary_erosion(solved, border_value=1)
    record = {
        "resolution": int(summary["atlas"]["resolution"]), "points": int(summary["points"]),
        "success_share": float(summary["success_share"]), "diverged_share": float(summary["diverged_share"]),
        "median_epochs": float(np.median(arrays["epochs_to_solve"][solved])) if solved.any() else None,
        "unsolved_loss_median": float(np.median(arrays["final_loss"][~solved])) if (~solved).any() else None,
        "solved_regions": int(regions), "x_name": str(arrays["x_name"]), "y_name": str(arrays["y_name"]),
        "x_range": [float(x[0]), float(x[-1])], "y_range": [float(y[0]), float(y[-1])], "base_point": base,
        "base_solved": bool(solved[base_pixel]),
        "edge_epochs_median": float(np.median(arrays["epochs_to_solve"][edge])) if edge.any() else None,
    }
    if zoom and edge.any():
        rows, cols = np.nonzero(edge)
        nearest = np.argmin((x[cols] - base[0]) ** 2 + (y[rows] - base[1]) ** 2)
        cx, cy = float(x[cols[nearest]]), float(y[rows[nearest]])
        half = (x[-1] - x[0]) / ZOOM / 2
        record["zoom_box"] = [round(v, 4) for v in (cx - half, cx + half, cy - half, cy + half)]
    return record


def scaling(work: Path) -> dict:
    """``scaling_h200.png``, drawn again from the committed measurements (taken on an H200)."""
    csv = work / "scaling_h200.csv"
    shutil.copyfile(FIGURES.parent / "results" / "scaling_h200.csv", csv)
    _cli("jaxbp.report", str(csv), cwd=work)
    shutil.copyfile(work / "scaling_h200_report" / "scaling.png", FIGURES / "scaling_h200.png")
    return {"source": "experiments/results/scaling_h200.csv"}


# ---------------------------------------------------------------- the README's blocks (cog)
def _record() -> dict:
    return json.loads(RECORD.read_text())


def _out(text: str) -> None:
    import cog

    cog.out(text.rstrip("\n") + "\n")


def _prose(text: str) -> None:
    """A paragraph, wrapped as the README's hand-written ones are."""
    _out(textwrap.fill(text, width=92, break_long_words=False, break_on_hyphens=False))


def cog_quickstart() -> None:
    _out(f"```\n{_record()['quickstart']['line']}\n```")


def _row(rows: list[dict], lr: float, hidden: int) -> dict:
    return next(r for r in rows if r["lr"] == lr and r["hidden"] == hidden)


def cog_sweep_table() -> None:
    rows = _record()["sweep"]["rows"]
    lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    for lr, hidden in TABLE_ROWS:
        r = _row(rows, lr, hidden)
        cells = [f"{r['lr']:g}", str(r["hidden"]), str(r["job"]), r["status"],
                 *(f"{r[k]:.3f}" for k in TABLE_COLUMNS[4:7]),
                 *("—" if r[k] is None or r[k] != r[k] else f"{r[k]:.0f}" for k in TABLE_COLUMNS[7:])]
        lines.append("| " + " | ".join(cells) + " |")
    _out("\n".join(lines))


def _failed(rows: list[dict], hidden: int) -> str:
    """The share of seeds that fail at lr ≥ 1 for one width, as a range over lr = 1 and 10."""
    shares = sorted(100 * (1 - _row(rows, lr, hidden)["success_rate"]) for lr in (1, 10))
    if shares[1] == 0:
        return f"none of these {_record()['sweep']['num_seeds']:,}"
    text = [f"{s:.1f}" if 0 < s < 1 else f"{s:.0f}" for s in shares]
    return f"{text[0]}%" if text[0] == text[1] else f"{text[0]}–{text[1]}%"


def cog_sweep_text() -> None:
    rows = _record()["sweep"]["rows"]
    slow = max(100 * r["success_rate"] for r in rows if r["lr"] <= 0.1)
    one = _row(rows, 1, 2)
    too_slow = "not one seed solves it" if slow == 0 else f"at most {slow:.0f}% solve it"
    _prose(f"and the report's heatmap answers the question at a glance: at lr ≥ 1, {_failed(rows, 2)} of "
         f"2-2-1 networks never solve XOR, {_failed(rows, 3)} of 2-3-1 networks fail, four hidden units "
         f"fail in {_failed(rows, 4)} of starts and eight in {_failed(rows, 8)}; lr ≤ 0.1 is simply too "
         f"slow for 5,000 epochs ({too_slow}). The two medians show why censoring "
         f"matters: at lr = 1, over the 2-2-1 seeds that converged the median is "
         f"{one['epochs_to_target_median_converged']:,.0f} epochs, but half of *all* 2-2-1 seeds are "
         f"solved only by epoch {one['epochs_to_target_km_median']:,.0f}.")


def cog_atlas() -> None:
    a = _record()["atlas"]
    z, (bx, by), box = a["zoom"], a["base_point"], a["zoom_box"]
    _prose(f"**{100 * a['success_share']:.1f}% of this plane solves XOR** within 2,000 epochs "
         f"({a['points']:,} networks; median {a['median_epochs']:,.0f} epochs where solved; "
         f"{100 * a['diverged_share']:.1f}% diverge). Seed 0's own init is the red cross at "
         f"({bx:.2f}, {by:.2f}), {'a solved' if a['base_solved'] else 'an unsolved'} point. The "
         f"starts that fail stall on the XOR plateau (median final loss "
         f"{a['unsolved_loss_median']:.3f}). Toward an edge the time to solve climbs: median "
         f"{a['edge_epochs_median']:,.0f} epochs on the solved points next to an unsolved one, "
         f"against {a['median_epochs']:,.0f} over all solved points. A {ZOOM}× zoom into the edge "
         f"nearest seed 0's init (`python -m jaxbp.report <atlas-dir> --zoom "
         f"{','.join(f'{v:g}' for v in box)}`, [map](experiments/figures/atlas_xor_221_zoom.png)) "
         f"solves {100 * z['success_share']:.1f}% of its {z['points']:,} points.")


def rewrite_readme(check: bool = False) -> int:
    """``cog -r README.md`` (or ``--check``) with this folder importable."""
    from cogapp import Cog

    args = ["cog", "-I", str(FIGURES), "--check" if check else "-r", str(README)]
    return Cog().main(args)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=PARTS, action="append", help="regenerate only these parts")
    parser.add_argument("--work", type=Path, help="scratch dir for the runs, kept (default: a new temp dir)")
    parser.add_argument("--cog-only", action="store_true", help="only rewrite the README from regenerated.json")
    args = parser.parse_args(argv)
    if not args.cog_only:
        args.work = args.work or Path(tempfile.mkdtemp(prefix="jaxbp-regenerate-"))
        args.work.mkdir(parents=True, exist_ok=True)
        record = _record() if RECORD.is_file() else {}
        for part in args.only or PARTS:
            record[part] = globals()[part](args.work.resolve())
            RECORD.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return rewrite_readme()


if __name__ == "__main__":
    sys.exit(main())
