# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Backprop step by step, with jaxbp
#
# This notebook follows the article *backprop step by step* on its own example, the 2-3-1
# network that learns XOR, and checks every step with numbers:
#
# 1. the **forward pass** $y = f(xW + b)$, by hand and with `model.forward`;
# 2. the **error** $E = \tfrac12 (y - y_{\text{true}})^2$ and the **deltas** passed backwards
#    layer by layer, by hand, with `backprop.backward`, with `jax.grad` and with finite
#    differences;
# 3. **training** one network with a plain Python loop of updates $W \leftarrow W - \alpha\,
#    \partial E / \partial W$;
# 4. the same network from **10,000 seeds at once**: how often it succeeds, and how much
#    faster one vmapped program is than the loop;
# 5. a **stuck** and a **converged** 2-2-1 network read back from a run's files, and why the
#    stuck one cannot separate XOR;
# 6. the article's FAQ in practice: **learning rate**, **L2 penalty** and **early
#    stopping** on the two-moons data;
# 7. **why a seed failed**: the gradient and the exact Hessian at its final weights, and
#    what more training does to it (`python -m jaxbp.diagnose`).
#
# It is a plain Python file in jupytext's percent format. Run it as a script
# (`python experiments/tutorial.py`, figures go to a temporary folder that it prints) or open
# it as a notebook (`jupytext --to notebook experiments/tutorial.py`, then open
# `experiments/tutorial.ipynb` in Jupyter). `JAXBP_TUTORIAL_FAST=1` shrinks every run to a
# smoke test; `JAXBP_TUTORIAL_OUT=<dir>` chooses where the figures go.

# %%
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import pandas as pd

from jaxbp import backprop, config, diagnose, engine, figures, job, model, results, runner, stats

IN_NOTEBOOK = "ipykernel" in sys.modules
if not IN_NOTEBOOK:
    matplotlib.use("Agg")  # a script only saves its figures
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

FAST = os.environ.get("JAXBP_TUTORIAL_FAST") == "1"
# Sizes: the real experiment by default, a smoke test for CI when FAST.
XOR_SEEDS = 1_000 if FAST else 10_000  # section 4
XOR_EPOCHS = 2_000 if FAST else 5_000  # sections 3 and 4
STUCK_SEEDS, STUCK_EPOCHS = (200, 2_000) if FAST else (1_000, 5_000)  # section 5
MOONS_SEEDS, MOONS_EPOCHS, PATIENCE = (10, 500, 30) if FAST else (100, 5_000, 100)  # section 6
DIAGNOSE_EPOCHS = 2_000 if FAST else None  # section 7; None: the default, 10× the job's epochs

OUT = Path(os.environ.get("JAXBP_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="jaxbp-tutorial-"))
OUT.mkdir(parents=True, exist_ok=True)
np.set_printoptions(precision=4, suppress=True)
print(f"{'FAST' if FAST else 'full'} mode; figures and job files → {OUT}")


def save_and_show(fig, name: str) -> None:
    """Saves a figure to OUT; shows it inline in a notebook, closes it in a script."""
    path = OUT / f"{name}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print(f"figure → {path}")
    if IN_NOTEBOOK:  # display() shows pyplot's figures and jaxbp.figures' Figure objects alike
        from IPython.display import display

        display(fig)
    plt.close(fig)


def max_abs_diff(a, b) -> float:
    """The largest entry of |a − b| over two pytrees of the same structure."""
    return max(float(np.max(np.abs(np.asarray(p, np.float64) - np.asarray(q, np.float64))))
               for p, q in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


# %% [markdown]
# ## 1. The forward pass
#
# The network has 2 inputs, 3 hidden sigmoid units and 1 sigmoid output. With a row vector
# $x$ as input, each layer computes a weighted sum and squashes it:
#
# $$z_1 = x W_1 + b_1, \qquad h_1 = \sigma(z_1), \qquad
#   z_2 = h_1 W_2 + b_2, \qquad \hat y = \sigma(z_2), \qquad \sigma(z) = \frac{1}{1 + e^{-z}}.$$
#
# `model.Spec` holds the shape, `model.init` draws the weights: a list with one
# `{"W", "b"}` dict per layer, so `params[0]` is $(W_1, b_1)$ and `params[1]` is
# $(W_2, b_2)$.

# %%
spec = model.Spec((2, 3, 1))  # sigmoid hidden units, sigmoid output, mse: the article's net
params = model.init(spec, jax.random.PRNGKey(0))
X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)  # XOR: y = x₁ xor x₂
Y = np.array([[0], [1], [1], [0]], np.float32)
for l, layer in enumerate(params, start=1):
    print(f"W_{l} {layer['W'].shape}:\n{np.asarray(layer['W'])}\nb_{l} = {np.asarray(layer['b'])}")


# %% [markdown]
# The same pass by hand, in NumPy and float64, for one input $x = (1, 0)$; each line is
# one equation above.

# %%
def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def as_numpy(params):
    """jaxbp params as float64 NumPy arrays: W1, b1, W2, b2."""
    return [np.asarray(params[l][k], np.float64) for l in (0, 1) for k in ("W", "b")]


W1, b1, W2, b2 = as_numpy(params)
x_one = np.array([1.0, 0.0])
z1 = x_one @ W1 + b1  # z_1 = x W_1 + b_1
h1 = sigmoid(z1)  # h_1 = σ(z_1)
z2 = h1 @ W2 + b2  # z_2 = h_1 W_2 + b_2
y_one = sigmoid(z2)  # ŷ = σ(z_2)
print(f"x = {x_one}\nz_1 = {z1}\nh_1 = {h1}\nz_2 = {z2}\nŷ = {y_one}")

y_jaxbp = model.forward(spec, params, x_one[None, :].astype(np.float32))  # a batch of 1 row
print(f"model.forward: ŷ = {np.asarray(y_jaxbp)[0]}")
print(f"max |hand − model.forward| = {max_abs_diff(y_one, y_jaxbp[0]):.2e}  (float32 round-off)")

# %% [markdown]
# ## 2. The error and the deltas, layer by layer
#
# The article's error for one example is $E = \tfrac12 (\hat y - y_{\text{true}})^2$. jaxbp's
# `mse` averages it over the batch of $n$ rows: $E = \frac1n \sum_i \tfrac12 (\hat y_i -
# y_i)^2$. Here the batch is all four XOR points, $n = 4$.
#
# Backprop names $\delta_l = \partial E / \partial z_l$, the error signal at layer $l$'s
# weighted sum, and passes it down with the chain rule:
#
# $$\delta_2 = \frac1n (\hat y - y) \odot \hat y (1 - \hat y)
#   \qquad\text{since } \sigma'(z) = \sigma(z)(1 - \sigma(z)),$$
# $$\frac{\partial E}{\partial W_2} = h_1^\top \delta_2, \qquad
#   \frac{\partial E}{\partial b_2} = \textstyle\sum_i \delta_{2,i},$$
# $$\delta_1 = (\delta_2 W_2^\top) \odot h_1 (1 - h_1), \qquad
#   \frac{\partial E}{\partial W_1} = x^\top \delta_1, \qquad
#   \frac{\partial E}{\partial b_1} = \textstyle\sum_i \delta_{1,i}.$$
#
# Rows are examples, so the product $h_1^\top \delta_2$ adds up the article's per-example
# gradient (the outer product of that example's $h_1$ and $\delta_2$) over the batch.

# %%
def hand_forward(W1, b1, W2, b2, x):
    h1 = sigmoid(x @ W1 + b1)
    return h1, sigmoid(h1 @ W2 + b2)


def hand_loss(W1, b1, W2, b2, x, y):
    _, y_hat = hand_forward(W1, b1, W2, b2, x)
    return 0.5 * np.sum((y_hat - y) ** 2) / len(x)  # E = (1/n) Σ ½ (ŷ − y)²


x64, y64 = X.astype(np.float64), Y.astype(np.float64)
n = len(x64)
h1, y_hat = hand_forward(W1, b1, W2, b2, x64)
E = hand_loss(W1, b1, W2, b2, x64, y64)
delta2 = (y_hat - y64) * y_hat * (1 - y_hat) / n  # δ_2 = (ŷ − y) ⊙ ŷ(1 − ŷ) / n
dW2, db2 = h1.T @ delta2, delta2.sum(axis=0)  # ∂E/∂W_2 = h_1ᵀ δ_2, ∂E/∂b_2 = Σ δ_2
delta1 = (delta2 @ W2.T) * h1 * (1 - h1)  # δ_1 = (δ_2 W_2ᵀ) ⊙ h_1(1 − h_1)
dW1, db1 = x64.T @ delta1, delta1.sum(axis=0)  # ∂E/∂W_1 = xᵀ δ_1, ∂E/∂b_1 = Σ δ_1
hand_grads = [{"W": dW1, "b": db1}, {"W": dW2, "b": db2}]

print(f"E = {E:.6f}\nŷ = {y_hat.ravel()}")
print(f"δ_2 (one row per example):\n{delta2}")
print(f"∂E/∂W_2 = {dW2.ravel()}   ∂E/∂b_2 = {db2}")
print(f"δ_1 (one row per example):\n{delta1}")
print(f"∂E/∂W_1 =\n{dW1}\n∂E/∂b_1 = {db1}")

# %% [markdown]
# Now the same numbers three more ways: jaxbp's hand-derived `backprop.backward` (the lines
# above, with no autodiff inside), JAX's automatic `jax.grad(model.loss)`, and central finite
# differences $\partial E / \partial \theta \approx (E(\theta + \varepsilon) - E(\theta -
# \varepsilon)) / 2\varepsilon$, which need nothing but the forward pass. jaxbp runs in
# float32 here, so agreement to about $10^{-8}$ is round-off. `jax.jit` compiles each
# function once (the spec, argument 0, is static); run eagerly, JAX would dispatch, and
# compile, every small operation on its own.

# %%
backward = jax.jit(backprop.backward, static_argnums=0)
autodiff = jax.jit(jax.grad(model.loss, argnums=1), static_argnums=0)  # ∂E/∂params by autodiff
E_backprop, backprop_grads = backward(spec, params, X, Y)
autodiff_grads = autodiff(spec, params, X, Y)


def finite_differences(arrays, x, y, eps=1e-6):
    """Central differences of hand_loss for every entry of [W1, b1, W2, b2], in float64."""
    grads = []
    for which, array in enumerate(arrays):
        grad = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            shifted = [a.copy() for a in arrays]
            shifted[which][index] = array[index] + eps
            plus = hand_loss(*shifted, x, y)
            shifted[which][index] = array[index] - eps
            grad[index] = (plus - hand_loss(*shifted, x, y)) / (2 * eps)
        grads.append(grad)
    return [{"W": grads[0], "b": grads[1]}, {"W": grads[2], "b": grads[3]}]


numeric_grads = finite_differences([W1, b1, W2, b2], x64, y64)
print(f"E: hand {E:.8f}, backprop.backward {float(E_backprop):.8f}")
print(f"max |hand − backprop.backward| = {max_abs_diff(hand_grads, backprop_grads):.2e}")
print(f"max |hand − jax.grad| = {max_abs_diff(hand_grads, autodiff_grads):.2e}")
print(f"max |hand − finite differences| = {max_abs_diff(hand_grads, numeric_grads):.2e}")

# %% [markdown]
# ## 3. Training one network with a Python loop
#
# Gradient descent repeats the update $W \leftarrow W - \alpha\, \partial E / \partial W$
# (and the same for every $b$) for a number of epochs; each epoch here sees all four points
# once. A seed *converges* when its final $E \le 0.01$. We use the learning rate
# $\alpha = 0.5$ and the starting weights that jaxbp's engine draws for seed 0
# (`model.init` from the seed's key), so section 4 can check its seed 0 against this loop.
# `backward` is section 2's compiled `backprop.backward`; the loop and the update stay plain
# Python.

# %%
xor_cfg = config.from_dict({"num_seeds": XOR_SEEDS, "epochs": XOR_EPOCHS, "progress": False,
                            "compile_cache": None})  # defaults: xor, 2-3-1, sgd, lr 0.5
LR = xor_cfg.lr
program = engine.make_program(xor_cfg)
assert program.spec == spec  # the 2-3-1 network of sections 1 and 2
start_params = program.init(engine.seed_key(0), engine.member_hyper(xor_cfg)).params


def update(params, grads, lr):
    """W ← W − α ∂E/∂W and b ← b − α ∂E/∂b, layer by layer."""
    return [{"W": p["W"] - lr * g["W"], "b": p["b"] - lr * g["b"]} for p, g in zip(params, grads)]


update(start_params, backward(spec, start_params, X, Y)[1], LR)  # compile before timing
loop_params, loop_losses = start_params, []
started = time.perf_counter()
for _ in range(XOR_EPOCHS):
    E_epoch, grads = backward(spec, loop_params, X, Y)  # E of the weights before this update
    loop_losses.append(E_epoch)
    loop_params = update(loop_params, grads, LR)
loop_losses = np.asarray(jax.device_get(loop_losses))
loop_s = time.perf_counter() - started
loop_final = float(model.loss(spec, loop_params, X, Y))
print(f"Python loop: {XOR_EPOCHS} epochs in {loop_s:.2f} s; E: {loop_losses[0]:.4f} → {loop_final:.5f}")
print(f"outputs on the four points: {np.asarray(model.forward(spec, loop_params, X)).ravel()}")


# %%
def plane_grid(low=-0.5, high=1.5, steps=200):
    """A grid over the input plane: (gx, gy) for contour plots and (steps², 2) points."""
    gx, gy = np.meshgrid(np.linspace(low, high, steps), np.linspace(low, high, steps))
    return gx, gy, np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)


def draw_boundary(ax, spec, params, x, y, title):
    """The network's output over the plane, its 0.5 contour, and the data points."""
    gx, gy, points = plane_grid(x.min() - 0.5, x.max() + 0.5)
    output = np.asarray(model.forward(spec, params, points)).reshape(gx.shape)
    ax.contourf(gx, gy, output, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.4)
    ax.contour(gx, gy, output, levels=[0.5], colors="k", linewidths=1)
    ax.scatter(x[:, 0], x[:, 1], c=y.ravel(), cmap="RdBu_r", vmin=0, vmax=1, edgecolors="k", s=40,
               label="training points")
    ax.set(title=title, xlabel="x₁", ylabel="x₂", aspect="equal")


fig, (ax_loss, ax_plane) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
ax_loss.semilogy(loop_losses)
ax_loss.axhline(xor_cfg.target_loss, color="gray", ls=":", label="target E = 0.01")
ax_loss.set(xlabel="epoch", ylabel="E", title="Loss of one 2-3-1 network (Python loop)")
ax_loss.legend()
draw_boundary(ax_plane, spec, loop_params, X, Y, "Output after training (black: ŷ = 0.5)")
save_and_show(fig, "3_python_loop")

# %% [markdown]
# ## 4. 10,000 seeds at once
#
# Whether gradient descent solves XOR depends on the starting weights. To measure *how
# often* it does, train many seeds. `engine.make_train(cfg)` returns a pure function
# `train(key, lr) -> (params, metrics)` that runs every epoch inside `lax.scan`;
# `jax.vmap` turns it into one program over all seeds, and `jax.jit` compiles it once. (The
# command line, `python -m jaxbp.train`, runs the same per-seed program through
# `runner.run`, which adds memory-sized chunks, several devices and a progress bar.)
#
# The success rate is a proportion out of $S$ seeds, so it comes with a Wilson 95%
# interval (`stats.wilson`).

# %%
train_all = jax.jit(jax.vmap(engine.make_train(xor_cfg)))
keys = jax.vmap(engine.seed_key)(jnp.arange(XOR_SEEDS))  # seed k's key depends on k alone
lrs = jnp.full(XOR_SEEDS, LR, jnp.float32)
started = time.perf_counter()
compiled = train_all.lower(keys, lrs).compile()
compile_s = time.perf_counter() - started
started = time.perf_counter()
_, metrics = jax.block_until_ready(compiled(keys, lrs))
vmap_s = time.perf_counter() - started
metrics = jax.device_get(metrics)

converged = int(metrics["converged"].sum())
low, high = stats.wilson(converged, XOR_SEEDS)
print(f"{converged} of {XOR_SEEDS} seeds reached E ≤ {xor_cfg.target_loss} in {XOR_EPOCHS} epochs: "
      f"success rate {converged / XOR_SEEDS:.1%} (95% Wilson CI {low:.1%}–{high:.1%})")
print(f"|Python loop − vmapped seed 0| final E = {abs(loop_final - metrics['final_loss'][0]):.2e}  "
      f"(both trained seed 0: {loop_final:.6f} vs {metrics['final_loss'][0]:.6f})")
speedup = XOR_SEEDS * loop_s / vmap_s  # the same network-epochs, both measured in this run
print(f"Python loop: 1 network in {loop_s:.2f} s → {XOR_EPOCHS / loop_s:,.0f} network-epochs/s\n"
      f"vmap: {XOR_SEEDS} networks in {vmap_s:.2f} s (+ {compile_s:.1f} s compiling once) → "
      f"{XOR_SEEDS * XOR_EPOCHS / vmap_s:,.0f} network-epochs/s\n"
      f"speed-up per network-epoch: {speedup:,.0f}×")

# %%
curve_epochs = xor_cfg.curve_epochs()  # every log_every epochs, then the last
curves = np.column_stack([metrics["curve"], metrics["final_loss"]])  # (seeds, samples)
q25, median, q75 = np.nanpercentile(curves, [25, 50, 75], axis=0)
fig, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
ax.fill_between(curve_epochs, q25, q75, alpha=0.3, label="interquartile range")
ax.semilogy(curve_epochs, median, label=f"median of {XOR_SEEDS:,} seeds")
ax.semilogy(np.arange(XOR_EPOCHS), loop_losses, "k--", lw=1, label="seed 0, Python loop")
ax.axhline(xor_cfg.target_loss, color="gray", ls=":", label="target")
ax.set(xlabel="epoch", ylabel="E", title=f"XOR 2-3-1, lr={LR}: {converged / XOR_SEEDS:.0%} converge")
ax.legend()
save_and_show(fig, "4_many_seeds")

# %% [markdown]
# ## 5. A stuck seed and a converged seed, read back from a run
#
# With only 2 hidden units, XOR fails far more often. We train 2-2-1 networks into a job
# directory, exactly as `python -m jaxbp.train hidden=2 lr=1 ...` would, and read it back
# with `results.load_run`: `run.seeds` is the per-seed table (`seeds.csv`), `run.params(k)`
# seed $k$'s final weights (from `params.npz`) and `run.dataset` the data as the job saw it.
# A *stuck* seed has not converged and still misclassifies a point.

# %%
job_dir = OUT / "xor_2-2-1"
stuck_cfg = config.from_dict({"hidden": 2, "lr": 1.0, "num_seeds": STUCK_SEEDS,
                              "epochs": STUCK_EPOCHS, "progress": False, "compile_cache": None})
print(job.train(stuck_cfg, job_dir, [], None))
run = results.load_run(job_dir)
x_xor, y_xor = run.dataset.x_train, run.dataset.y_train
table = run.seeds
stuck_rows = table[~table["converged"] & (table["train_acc"] < 1)]
converged_rows = table[table["converged"]]
assert len(stuck_rows) and len(converged_rows), "this run needs both a stuck and a converged seed"
# The most typical of each: the stuck seed at the median stuck loss, the first converged one.
stuck_seed = int(stuck_rows.iloc[np.argsort(stuck_rows["final_loss"].to_numpy())[len(stuck_rows) // 2]]["seed"])
good_seed = int(converged_rows["seed"].iloc[0])
print(f"{len(converged_rows)} converged, {len(stuck_rows)} stuck (misclassify a point) of {len(table)}; "
      f"looking at stuck seed {stuck_seed} and converged seed {good_seed}")


# %%
def hidden_codes(params, x):
    """Each point's hidden activations h = σ(x W_1 + b_1), one row per point."""
    return sigmoid(x @ np.asarray(params[0]["W"], np.float64) + np.asarray(params[0]["b"], np.float64))


def closest_opposite_pair(codes, y):
    """The positive and negative point whose hidden codes are closest, and their distance."""
    pairs = [(np.linalg.norm(codes[i] - codes[j]), i, j)
             for i in np.flatnonzero(y[:, 0] == 1) for j in np.flatnonzero(y[:, 0] == 0)]
    return min(pairs)


def describe_seed(seed):
    p = run.params(seed)
    codes = hidden_codes(p, x_xor)
    outputs = np.asarray(model.forward(run.spec, p, x_xor.astype(np.float32)))
    E_seed, grads = backprop.backward(run.spec, p, x_xor.astype(np.float32), y_xor.astype(np.float32))
    gap, i, j = closest_opposite_pair(codes, y_xor)
    grad_norm = np.sqrt(sum(float(np.sum(np.square(g))) for g in jax.tree.leaves(grads)))
    frame = pd.DataFrame({"x₁": x_xor[:, 0], "x₂": x_xor[:, 1], "y": y_xor[:, 0],
                          "h₁": codes[:, 0], "h₂": codes[:, 1], "ŷ": outputs[:, 0]})
    print(f"seed {seed}: E = {float(E_seed):.4f}, |∂E/∂θ| = {grad_norm:.1e}\n{frame.round(3).to_string(index=False)}")
    print(f"closest hidden codes of a 1-point and a 0-point: h = {codes[i].round(3)} at x = {x_xor[i]} "
          f"and h = {codes[j].round(3)} at x = {x_xor[j]}, |Δh| = {gap:.3f}, "
          f"outputs {outputs[i, 0]:.3f} and {outputs[j, 0]:.3f}\n")


describe_seed(stuck_seed)
describe_seed(good_seed)


# %%
def draw_hidden_lines(ax, params, title):
    """Each hidden unit's line w·x + b = 0 over the output, and ŷ at the four points."""
    draw_boundary(ax, run.spec, params, x_xor, y_xor, title)
    W, b = np.asarray(params[0]["W"], np.float64), np.asarray(params[0]["b"], np.float64)
    xs = np.linspace(-0.5, 1.5, 2)
    for unit, color in zip(range(W.shape[1]), ("tab:green", "tab:purple")):
        w1, w2 = W[:, unit]
        if abs(w2) > abs(w1):  # w1 x1 + w2 x2 + b = 0, solved for the steeper coordinate
            ax.plot(xs, -(w1 * xs + b[unit]) / w2, color=color, lw=2, label=f"hidden unit {unit + 1}")
        else:
            ax.plot(-(w2 * xs + b[unit]) / w1, xs, color=color, lw=2, label=f"hidden unit {unit + 1}")
    outputs = np.asarray(model.forward(run.spec, params, x_xor.astype(np.float32)))[:, 0]
    for (x1, x2), out in zip(x_xor, outputs):
        ax.annotate(f"ŷ={out:.2f}", (x1, x2), textcoords="offset points", xytext=(6, 6), fontsize=9)
    ax.set(xlim=(-0.5, 1.5), ylim=(-0.5, 1.5))
    ax.legend(fontsize=8, loc="lower left")


fig, axes = plt.subplots(1, 2, figsize=(10, 4.8), layout="constrained")
draw_hidden_lines(axes[0], run.params(stuck_seed), f"stuck seed {stuck_seed}")
draw_hidden_lines(axes[1], run.params(good_seed), f"converged seed {good_seed}")
save_and_show(fig, "5_stuck_and_converged")

# %% [markdown]
# **Why the stuck network cannot separate XOR.** The output sees the input only through
# the two hidden activations: $\hat y = \sigma(v_1 h_1 + v_2 h_2 + c)$, and each
# $h_j = \sigma(w_j \cdot x + b_j)$ is a soft half-plane feature: near 0 on one side of the
# line $w_j \cdot x + b_j = 0$, near 1 on the other. In the converged network the two lines
# cut the square so that the two 1-points land between them and the 0-points outside: one
# unit cuts $(0,0)$ off from the rest (an *OR*, or its negation), the other cuts $(1,1)$ off
# (an *AND*, or its negation), and the output combines them into *OR and not AND*.
#
# In the typical stuck network, a 1-point and a 0-point lie on the **same side of both
# lines**, deep in the sigmoids' flat tails, so they get (almost) the same hidden code $h$
# (the table prints $|\Delta h|$). The output is a function of $h$ alone, so it must give them
# (almost) the same $\hat y$; the best compromise for one 1-point and one 0-point is
# $\hat y \approx 0.5$ for both, and $E \approx \frac14 \cdot \tfrac12 (0.5^2 + 0.5^2) =
# 0.0625$ — the plateau where the stuck seeds sit. No choice of output weights helps, since
# they all act on the same $h$, so only moving a line would. But the signal that moves a
# line is $\delta_1 = (\delta_2 W_2^\top) \odot h_1 (1 - h_1)$, and $h(1 - h) \approx 0$ in
# a saturated tail: the gradient is tiny ($|\partial E / \partial \theta|$ above), and
# gradient descent stays stuck. Across all the run's stuck seeds:

# %%
gaps = np.array([closest_opposite_pair(hidden_codes(run.params(int(k)), x_xor), y_xor)[0]
                 for k in stuck_rows["seed"]])
print(f"{np.mean(gaps < 0.05):.0%} of the {len(gaps)} stuck seeds map a 1-point and a 0-point to hidden "
      f"codes within 0.05 of each other (median |Δh| = {np.median(gaps):.3f}); "
      f"their median final E = {stuck_rows['final_loss'].median():.4f}")

# %% [markdown]
# ## 6. The FAQ in practice: learning rate, L2 penalty, early stopping
#
# The two-moons data (`data=moons`) has a held-out test split (25%) and is standardised
# with the training split's statistics. With 100 noisy points and 16 hidden units, a
# network can fit the training points' noise, which shows up as a test loss above the
# train loss.
#
# * **Learning rate.** Too small and training crawls; larger is faster until it overshoots.
# * **L2 penalty** adds $\lambda \cdot \tfrac12 \sum W^2$ to $E$ (weights only, not biases),
#   so the update becomes $W \leftarrow W - \alpha(\partial E/\partial W + \lambda W)$:
#   weights decay unless the data keeps them up, which smooths the boundary.
# * **Early stopping** watches the test loss and keeps the weights from its best epoch,
#   stopping a seed after `patience` epochs without improvement.
#
# The learning rate and $\lambda$ are traced values, so one `runner.run` trains the whole
# lr × $\lambda$ grid as one compiled program: every member gets its own seed, `lr` and
# `l2`. (A config with `l2 > 0` turns the penalty on; members with $\lambda = 0$ then
# simply pay nothing.)

# %%
moons_cfg = config.from_dict({
    "data": {"name": "moons", "n_samples": 100, "noise": 0.3}, "hidden": 16, "lr": 8.0, "l2": 1e-4,
    "num_seeds": MOONS_SEEDS, "epochs": MOONS_EPOCHS, "progress": False, "compile_cache": None})
grid_lrs, grid_l2s = [0.5, 2.0, 8.0], [0.0, 1e-4, 1e-3]
members = pd.DataFrame([(lr, l2, seed) for lr in grid_lrs for l2 in grid_l2s for seed in range(MOONS_SEEDS)],
                       columns=["lr", "l2", "seed"])
grid = runner.run(moons_cfg, seeds=members["seed"].to_numpy(), lrs=members["lr"].to_numpy(),
                  hyper={"l2": members["l2"].to_numpy()})
for key in ("final_loss", "test_loss", "train_acc", "test_acc"):
    members[key] = grid.metrics[key]
summary = members.groupby(["lr", "l2"]).agg(
    train_loss=("final_loss", "median"), test_loss=("test_loss", "median"),
    train_acc=("train_acc", "mean"), test_acc=("test_acc", "mean"))
print(f"{len(members)} members ({MOONS_SEEDS} seeds × {len(grid_lrs)} lrs × {len(grid_l2s)} l2s) in "
      f"{grid.wall_s:.1f} s (compile {grid.compile_s:.1f} s); medians of losses, means of accuracies:")
print(summary.round(4).to_string())

# %% [markdown]
# Early stopping on the same seeds at the largest learning rate, with no penalty, against
# the grid's members trained for every epoch:

# %%
stopping_cfg = dataclasses.replace(moons_cfg, l2=0.0, patience=PATIENCE)
stopped = runner.run(stopping_cfg)
full_rows = members[(members["lr"] == moons_cfg.lr) & (members["l2"] == 0.0)]
stop_epochs = stopped.metrics["stopped_epoch"][stopped.metrics["stopped_epoch"] >= 0]  # -1: never stopped
print(f"lr={moons_cfg.lr}, no penalty, {MOONS_SEEDS} seeds:\n"
      f"  all {MOONS_EPOCHS} epochs:      train E {full_rows['final_loss'].median():.4f}, "
      f"test E {full_rows['test_loss'].median():.4f}, test acc {full_rows['test_acc'].mean():.1%}\n"
      f"  early stopping (patience {PATIENCE}): train E {np.median(stopped.metrics['final_loss']):.4f}, "
      f"test E {np.median(stopped.metrics['test_loss']):.4f}, test acc {stopped.metrics['test_acc'].mean():.1%}; "
      f"{len(stop_epochs)} of {MOONS_SEEDS} seeds stopped"
      + (f", median at epoch {np.median(stop_epochs):.0f}" if len(stop_epochs) else ""))


# %%
def member_params(result, index):
    """One member's params out of a run's stacked params."""
    return jax.tree.map(lambda leaf: leaf[index], result.params)


moons_data = moons_cfg.data.load(moons_cfg.loss)
moons_spec = moons_cfg.spec(moons_data.x_train.shape[1], moons_data.y_train.shape[1])
seed0 = {l2: int(members.index[(members["lr"] == moons_cfg.lr) & (members["l2"] == l2) & (members["seed"] == 0)][0])
         for l2 in grid_l2s}
panels = [(member_params(grid, seed0[0.0]), "all epochs, no penalty"),
          (member_params(grid, seed0[1e-4]), "L2 λ = 1e-4"),
          (member_params(stopped, 0), f"early stopping (patience {PATIENCE})")]
# jaxbp.figures draws what `python -m jaxbp.report` draws: P(class 1) over the plane, its 0.5
# line and the training points; the test points (gold-edged squares) are added on top.
gx, gy = figures.plane(moons_data.x_train)
grid_points = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
surfaces = {f"seed 0, lr={moons_cfg.lr}: {title}":
            np.asarray(model.forward(moons_spec, params_k, grid_points))[:, 0].reshape(gx.shape)
            for params_k, title in panels}
fig = figures.decision_boundaries(moons_data.x_train, moons_data.y_train[:, 0].astype(int), surfaces, gx, gy,
                                  "binary", "Moons: no penalty, an L2 penalty, early stopping", " (standardised)")
for ax in fig.axes[:len(panels)]:
    ax.scatter(moons_data.x_test[:, 0], moons_data.x_test[:, 1], c=moons_data.y_test.ravel(), cmap="RdBu_r",
               vmin=0, vmax=1, marker="s", edgecolors="gold", s=30, label="test points")
fig.axes[0].legend(fontsize=7, loc="lower left")
save_and_show(fig, "6_moons_regularisation")

# %% [markdown]
# In the full run, the largest learning rate fits the training points best and the test
# points worse than $\alpha = 2$ does: its boundary bends around single noisy points. A
# small L2 penalty ($\lambda = 10^{-4}$) and early stopping both trade a little training
# loss for a lower test loss; too much penalty ($\lambda = 10^{-3}$) underfits. The same
# questions at scale are one command away:
# `python -m jaxbp.train -m +experiment=moons_regularization`.

# %% [markdown]
# ## 7. Why did this seed fail?
#
# Section 5 showed *what* a stuck network looks like. To say *why* gradient descent stops
# there, look at the training objective $E(\theta)$ around the final weights $\theta^*$
# (all $P = 9$ weights and biases of the 2-2-1 network in one vector). To second order,
#
# $$E(\theta^* + d) \approx E(\theta^*) + g^\top d + \tfrac12\, d^\top H d, \qquad
#   g = \nabla E(\theta^*), \quad H = \nabla^2 E(\theta^*),$$
#
# and the eigenvalues $\lambda_1 \le \dots \le \lambda_P$ of the symmetric $P \times P$
# Hessian $H$ are the curvatures along its eigenvectors. The cases:
#
# * $g = 0$ and every $\lambda_i > 0$: a **strict local minimum**; no small step lowers $E$.
# * some $\lambda_i < 0$: a **saddle**; moving along that eigenvector $v_i$ lowers $E$ by
#   about $\tfrac12 |\lambda_i| \|d\|^2$, and gradient descent grows that component by a
#   factor $1 + \alpha |\lambda_i|$ per epoch, so it leaves, slowly when $|\lambda_i|$ is small.
# * $g \approx 0$, no negative curvature, yet $E$ keeps falling as $\|\theta\|$ grows: a
#   **plateau** whose infimum lies at infinite weights. Sigmoids saturate, so the gradient
#   shrinks like $e^{-|z|}$ as the weights grow, and the network **drifts** for ever.
#
# Hamey (1998) showed that no finite stationary point of the 2-2-1 XOR surface is a relative
# minimum, and Sprinkhuizen-Kuyper & Boers that from every finite point a strictly decreasing
# path leads to zero error: stuck networks should be saddles or drifting.
# `diagnose.diagnose(run)` checks this for every seed of the job from section 5, in float64:
# $g$ and $H$ by autodiff (`jax.hessian`, vmapped over seeds), the spectrum by
# `jnp.linalg.eigvalsh`, and a **continuation** that trains every unsolved seed on from
# $\theta^*$ with the job's own optimiser and learning rate. Its verdicts and their
# thresholds are stated in `jaxbp/diagnose.py` and the README; it is what
# `python -m jaxbp.diagnose <job_dir>` writes to `diagnosis.csv`.

# %%
diagnosis = diagnose.diagnose(run, epochs=DIAGNOSE_EPOCHS)
run.dir.write_diagnosis(diagnosis)  # as the command line would: <job>/diagnosis.csv
continued_epochs = int(diagnosis["continued_epochs"].iloc[0])
counts = diagnosis["verdict"].value_counts()
print(f"verdicts of {len(diagnosis)} seeds (continuation {continued_epochs:,} epochs): "
      + ", ".join(f"{v} {counts.get(v, 0)}" for v in diagnose.VERDICTS))
print(diagnose.verdict_table(diagnosis).round(6).to_string())

# %% [markdown]
# Now section 5's stuck seed on its own: its gradient, its whole spectrum, and what the
# extra epochs do to its loss and weight norm.

# %%
row = diagnosis.set_index("seed").loc[stuck_seed]
eigenvalues = diagnose.seed_spectrum(run, stuck_seed)
print(f"stuck seed {stuck_seed}: E = {row['loss']:.6f}, |g| = {row['grad_norm']:.2e}, ‖θ‖ = {row['weight_norm']:.3f}")
print(f"Hessian eigenvalues λ: {eigenvalues}")
print(f"stuck seed hessian_min_eig = {row['hessian_min_eig']:.6e}, tolerance τ = {row['eig_tol']:.1e}: "
      f"{row['hessian_neg_count']} below −τ, {row['hessian_zero_count']} within ±τ")
stuck_params = [{k: np.asarray(v, np.float64)[None] for k, v in layer.items()} for layer in run.params(stuck_seed)]
continued = diagnose.continue_training(run, np.array([stuck_seed]), stuck_params, continued_epochs)
print(f"after {continued_epochs:,} more epochs: E {row['loss']:.6f} → {row['continued_loss']:.6f}, "
      f"‖θ‖ {row['weight_norm']:.3f} → {row['continued_weight_norm']:.3f}: verdict {row['verdict']}")

# %%
fig, (ax_eig, ax_more) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
order = np.arange(1, len(eigenvalues) + 1)
negative = eigenvalues < 0
ax_eig.bar(order[~negative], np.abs(eigenvalues[~negative]), color="tab:blue", label="λ > 0")
ax_eig.bar(order[negative], np.abs(eigenvalues[negative]), color="tab:red", label="λ < 0")
ax_eig.axhline(row["eig_tol"], color="gray", ls=":", label="τ: below it, flat")
ax_eig.set_yscale("log")
ax_eig.set(xlabel="i (ascending λ_i)", ylabel="|λ_i|", title=f"Hessian spectrum of stuck seed {stuck_seed}")
ax_eig.legend(fontsize=8)
epochs_after = np.append(continued["curve_epochs"], continued_epochs)  # the block starts, then the end
ax_more.plot(STUCK_EPOCHS + epochs_after, np.append(continued["curve"][0], row["continued_loss"]), "o-")
ax_more.set(xlabel="epoch", ylabel="E", title=f"trained on from epoch {STUCK_EPOCHS:,}: verdict {row['verdict']}")
save_and_show(fig, "7_diagnosis")

# %% [markdown]
# **Reading the verdict.** A typical stuck 2-2-1 seed has a tiny gradient, a few flat or
# barely curved directions (the saturated hidden units: $\sigma'(z) \approx e^{-|z|}$), and
# either no negative eigenvalue at all, so that it sits on the floor of a plateau
# (`drifting`: the continuation lowers $E$ by a sliver while $\|\theta\|$ keeps growing), or
# a small negative one (`saddle`: a way down exists, but at $1 + \alpha|\lambda|$ per epoch
# it takes thousands of epochs to matter). `slow` seeds were merely short of epochs. A
# `local_minimum` verdict needs $g \approx 0$, no negative curvature and a continuation that
# changes nothing: that is what the theorems rule out at finite weights. The README gives
# the counts for 1,000 seeds at 5,000 epochs; `python -m jaxbp.report <job_dir>` draws
# `diagnosis.png` once `diagnosis.csv` exists.
