"""The gradient and the exact Hessian spectrum of a network's training objective, per seed.

For one seed, ``θ ∈ R^P`` is every parameter (each layer's ``W``, ``b`` and shortcut ``S``)
flattened by ``jax.flatten_util.ravel_pytree`` in the pytree's order, and::

    E(θ) = data_loss(θ) + l2 · ½ Σ W² + l1 · Σ |W|       model.loss: what the job descended
    g    = ∇E(θ)                                          reverse-mode autodiff
    H    = ∇²E(θ) ∈ R^{P×P}                               jax.hessian (forward over reverse)
    λ_1 ≤ … ≤ λ_P = eigvalsh(H)                           H is symmetric, so λ are real

Everything runs in float64 (inside ``jax.enable_x64(True)``, whatever the caller set), so
the spectrum is exact up to round-off of about ``1e-16 · max|λ|``. The Hessian of ``l1 · Σ|W|``
is 0 wherever no weight is exactly 0: the penalty's kink is a set of measure zero.

Seeds are measured in chunks of a fixed size (the last one padded with copies), so one
compiled program serves every chunk of a job and memory stays bounded.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# Above this many parameters an exact Hessian per seed stops being cheap (P² floats to
# build, P³ flops to diagonalise): 2,048 parameters is 32 MiB and ~1 s per seed on a CPU.
MAX_HESSIAN_PARAMS = 2_048
CHUNK_BYTES = 256 * 2**20  # working memory of one chunk of seeds
MAX_CHUNK = 1_024


def n_params(params) -> int:
    """Scalars in one seed's params (a pytree with a leading seed axis on every leaf)."""
    return sum(int(np.prod(np.shape(leaf)[1:])) for leaf in _leaves(params))


def _leaves(tree) -> list:
    return [leaf for layer in tree for _, leaf in sorted(layer.items())]


def seeds_per_chunk(n_params_: int, n_rows: int, width_sum: int, hessian: bool = True) -> int:
    """Seeds measured per call: what fits in :data:`CHUNK_BYTES`. Forward-over-reverse
    pushes ``P`` tangents through the backward pass, so one seed holds about ``P`` copies
    of its activations (``n_rows · Σ sizes`` floats) besides ``H`` and its eigen-workspace."""
    tangents = n_params_ if hessian else 1
    per_seed = 8 * (4 * tangents * n_rows * width_sum + (3 * n_params_**2 if hessian else 4 * n_params_))
    return int(max(1, min(MAX_CHUNK, CHUNK_BYTES // per_seed)))


def _measure_fn(spec, x, y, l1: float, l2: float, template, hessian: bool):
    """The jitted ``flat (C, P) -> dict of (C,) or (C, P) arrays`` for one chunk of seeds."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    from jaxbp import model

    _, unravel = ravel_pytree(template)

    def objective(flat):  # E(θ) = data loss + penalty, the job's training objective
        return model.loss(spec, unravel(flat), x, y, l1=l1, l2=l2)

    def one(flat):
        loss, grad = jax.value_and_grad(objective)(flat)
        out = {"loss": loss, "grad_norm": jnp.linalg.norm(grad), "weight_norm": jnp.linalg.norm(flat)}
        if hessian:
            H = jax.hessian(objective)(flat)
            out["eigenvalues"] = jnp.linalg.eigvalsh(0.5 * (H + H.T))  # symmetric up to round-off
        return out

    return jax.jit(jax.vmap(one))


def measure(spec, params, x, y, l1: float = 0.0, l2: float = 0.0, hessian: bool = True,
            chunk: int | None = None) -> dict[str, np.ndarray]:
    """Loss, gradient norm, weight norm and (``hessian``) the Hessian's eigenvalues of
    every seed, in float64.

    Args:
        spec: the network (``model.Spec``).
        params: the seeds' params, a ``model.init``-shaped pytree whose leaves have a
            leading seed axis ``N``.
        x, y: the training data, ``(n, sizes[0])`` and ``(n, sizes[-1])``.
        l1, l2: the job's penalties (they are part of ``E``).
        hessian: also build ``H`` and its spectrum (refused above
            :data:`MAX_HESSIAN_PARAMS` parameters).
        chunk: seeds per call; default :func:`seeds_per_chunk`.

    Returns:
        ``loss``, ``grad_norm``, ``weight_norm``: ``(N,)``; with ``hessian``,
        ``eigenvalues``: ``(N, P)`` in ascending order.
    """
    import jax

    P = n_params(params)
    if hessian and P > MAX_HESSIAN_PARAMS:
        raise ValueError(f"the network has {P:,} parameters; exact Hessians are limited to "
                         f"{MAX_HESSIAN_PARAMS:,} per seed")
    count = len(np.asarray(_leaves(params)[0]))
    chunk = chunk or seeds_per_chunk(P, len(x), sum(spec.sizes), hessian)
    chunk = min(chunk, count)
    with jax.enable_x64(True):
        template = jax.tree.map(lambda leaf: np.asarray(leaf[0], np.float64), params)
        # ravel_pytree concatenates the raveled leaves in tree order: the same, for all seeds
        flat = np.concatenate([np.asarray(leaf, np.float64).reshape(count, -1)
                               for leaf in jax.tree.leaves(params)], axis=1)
        fn = _measure_fn(spec, np.asarray(x, np.float64), np.asarray(y, np.float64), float(l1), float(l2),
                         template, hessian)
        parts = [fn(padded(flat[start:start + chunk], chunk)) for start in range(0, count, chunk)]
        parts = [jax.device_get(part) for part in parts]
    return {k: np.concatenate([part[k] for part in parts])[:count] for k in parts[0]} if parts else {}


def padded(rows: np.ndarray, size: int) -> np.ndarray:
    """``rows`` padded to ``size`` with copies of its last row (one program for every chunk)."""
    missing = size - len(rows)
    return np.concatenate([rows, np.repeat(rows[-1:], missing, axis=0)]) if missing else rows


def spectrum_counts(eigenvalues: np.ndarray, rtol: float, atol: float) -> dict[str, Any]:
    """Per seed: the tolerance ``τ = max(rtol · max|λ|, atol)``, how many eigenvalues are
    below ``−τ`` (negative curvature) and how many have ``|λ| ≤ τ`` (flat directions).

    ``eigenvalues``: ``(N, P)``. Returns ``tol``, ``neg_count``, ``zero_count``, ``min``,
    ``max``, each ``(N,)``.
    """
    lam = np.asarray(eigenvalues, np.float64)
    scale = np.max(np.abs(lam), axis=1) if lam.shape[1] else np.zeros(len(lam))
    tol = np.maximum(rtol * scale, atol)
    finite = np.all(np.isfinite(lam), axis=1)
    neg = np.where(finite, np.sum(lam < -tol[:, None], axis=1), -1)
    zero = np.where(finite, np.sum(np.abs(lam) <= tol[:, None], axis=1), -1)
    nan = np.full(len(lam), math.nan)
    return {"tol": tol, "neg_count": neg, "zero_count": zero,
            "min": np.where(finite, lam[:, 0], nan) if lam.shape[1] else nan,
            "max": np.where(finite, lam[:, -1], nan) if lam.shape[1] else nan}
