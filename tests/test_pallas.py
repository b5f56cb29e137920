"""The Pallas kernel (interpret mode on the CPU) against the XLA engine and a plain loop.

Tolerance: float32 at rtol 1e-5 (atol 1e-6 for values near zero). The kernel runs the
engine's operations in the engine's order, but XLA's CPU compiler contracts a multiply and
an add into one FMA in some fusions and not in others, so the programs differ by an ulp here
and there; 12 to 25 epochs of training amplify that to about 1e-6. A member on its way to
exploding amplifies it exponentially, so the rates stay below that (divergence has its own
test). Each kernel compiles in seconds in interpret mode, so the default run covers every
activation, every output/loss pair and both depths once; ``-m slow`` runs the cross product."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest

from jaxbp import backprop, bench, config, data, engine, model
from jaxbp import pallas_kernel as pk

RTOL, ATOL = 1e-5, 1e-6
MEMBERS = 37  # not a multiple of the block: the padding is exercised
PAIRS = [("sigmoid", "mse"), ("identity", "mse"), ("softmax", "mse"), ("sigmoid", "bce"), ("softmax", "ce")]
ACTIVATIONS = ["sigmoid", "tanh", "relu", "identity"]
# One spec per pair, every activation and both depths among them: the default run.
DIAGONAL = {(ACTIVATIONS[i % 4], pair, 1 + i % 2) for i, pair in enumerate(PAIRS)}


def _dataset(output: str, loss: str, rows: str = "small") -> data.Dataset:
    if rows == "many":  # 32 rows: more than UNROLL_ROWS, so the kernel loops over rows
        return data.Parity(bits=5).load(loss)
    return data.Encoder(bits=3).load(loss) if output == "softmax" else data.Xor().load(loss)


def _initial(spec: model.Spec, cfg_init, members: int):
    """The engine's initial params: ``init_key, shuffle_key = split(seed_key(seed))``."""
    keys = jax.vmap(engine.seed_key)(jnp.arange(members))
    return jax.jit(jax.vmap(lambda key: model.init(spec, jax.random.split(key)[0], cfg_init.scheme,
                                                   cfg_init.scale, cfg_init.bias, jnp.float32)))(keys)


def _transform(optimizer: str, lr, momentum, adam=pk.ADAM):
    # float32 hyperparameters, as the engine's inject_hyperparams holds them: 1 − β1 is
    # then computed in float32, not rounded from Python's float64.
    adam = [jnp.float32(v) for v in adam]
    return {"sgd": lambda: optax.sgd(lr), "momentum": lambda: optax.sgd(lr, momentum),
            "nesterov": lambda: optax.sgd(lr, momentum, nesterov=True),
            "adam": lambda: optax.adam(lr, *adam)}[optimizer]()


def reference(spec, x, y, params, lrs, *, optimizer="sgd", momentum=0.9, epochs, log_every,
              target_loss=0.01, l1=0.0, l2=0.0):
    """A plain Python loop over epochs: backprop.backward_terms and optax, member by member
    (vmapped), freezing a member whose loss or update is not finite."""
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)

    def member(p, opt, lr, ett, div, t):
        loss, _, grads = backprop.backward_terms(spec, p, x, y, l1, l2)
        updates, new_opt = _transform(optimizer, lr, momentum).update(grads, opt, p)
        new_p = optax.apply_updates(p, updates)
        ett = jnp.where((loss <= target_loss) & (ett < 0), t, ett)
        finite = jnp.isfinite(loss) & jnp.all(jnp.array([jnp.all(jnp.isfinite(v)) for v in jax.tree.leaves(new_p)]))
        div = div | ~finite
        keep = lambda old, new: jax.tree.map(lambda a, b: jnp.where(div, a, b), old, new)  # noqa: E731
        return keep(p, new_p), keep(opt, new_opt), ett, div, loss

    step = jax.jit(jax.vmap(member, in_axes=(0, 0, 0, 0, 0, None)))
    opt = jax.vmap(lambda p, lr: _transform(optimizer, lr, momentum).init(p))(params, lrs)
    ett, div = jnp.full(lrs.shape, -1, jnp.int32), jnp.zeros(lrs.shape, bool)
    curve = []
    for t in range(epochs):
        params, opt, ett, div, loss = step(params, opt, lrs, ett, div, jnp.int32(t))
        if t % log_every == 0:
            curve.append(loss)
    curve += [jnp.full(lrs.shape, jnp.nan)] * (-(-epochs // log_every) - len(curve))
    return params, ett, div, jnp.stack(curve)


def run_kernel(spec, x, y, params, lrs, *, optimizer="sgd", momentum=0.9, epochs, log_every,
               target_loss=0.01, **kwargs):
    n_blocks = -(-epochs // log_every)
    packed, _, ett, div, curve = pk.train_blocks(
        spec, x, y, pk.pack(params), None, lrs, jnp.full(lrs.shape, momentum), jnp.full(lrs.shape, -1, jnp.int32),
        jnp.zeros(lrs.shape, bool), first_epoch=0, n_blocks=n_blocks, log_every=log_every, epochs=epochs,
        target_loss=target_loss, optimizer=optimizer, interpret=True, **kwargs)
    return pk.unpack(spec, packed), ett, div, curve


def assert_same_training(kernel, expected):
    for got, want in zip(jax.tree.leaves(kernel[0]), jax.tree.leaves(expected[0])):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(kernel[1], expected[1])  # epochs_to_target
    np.testing.assert_array_equal(kernel[2], expected[2])  # diverged
    np.testing.assert_allclose(kernel[3], expected[3], rtol=RTOL, atol=ATOL)  # curve, NaN == NaN


def _spec_case(activation, pair, depth, lrs=None, rows="small", hidden=2, **spec_kw):
    output, loss = pair
    # Rates below where members explode: an exploding member amplifies rounding
    # exponentially before it diverges (test_pallas_freezes_diverged_members covers that),
    # and a deep linear network explodes first.
    lrs = lrs or (0.02, 0.2 if activation == output == "identity" else 0.5)
    ds = _dataset(output, loss, rows)
    spec = model.Spec((ds.x_train.shape[1], *[hidden] * depth, ds.y_train.shape[1]), activation, output, loss,
                      **spec_kw)
    return spec, ds.x_train, ds.y_train, _random_params(spec, MEMBERS), jnp.geomspace(*lrs, MEMBERS).astype(jnp.float32)


def _random_params(spec: model.Spec, members: int):
    """N(0, 1) weights, N(0, 0.1²) biases, from NumPy: drawing them with jax.random would
    compile threefry, seconds per spec (the engine tests draw the engine's own)."""
    rng = np.random.default_rng(0)
    params = [{"W": rng.standard_normal((members, a, b)), "b": 0.1 * rng.standard_normal((members, b))}
              for a, b in zip(spec.sizes[:-1], spec.sizes[1:])]
    if spec.shortcuts:
        params[-1]["S"] = rng.standard_normal((members, spec.sizes[0], spec.sizes[-1]))
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)


@pytest.mark.parametrize("activation,pair,depth", [
    case if case in DIAGONAL else pytest.param(*case, marks=pytest.mark.slow)
    for case in itertools.product(ACTIVATIONS, PAIRS, (1, 2))])
def test_pallas_matches_the_reference_loop_for_every_spec(activation, pair, depth):
    # 12 epochs in blocks of 5: the last block is partial, its tail skipped.
    spec, x, y, params, lrs = _spec_case(activation, pair, depth)
    kw = dict(epochs=12, log_every=5, target_loss=0.05)
    kernel = run_kernel(spec, x, y, params, lrs, **kw)
    assert_same_training(kernel, reference(spec, x, y, params, lrs, **kw))
    assert kernel[3].shape == (3, MEMBERS) and not np.isnan(kernel[3]).any()


@pytest.mark.parametrize("optimizer", ["nesterov", "adam"])  # momentum: in the tests below
def test_pallas_optimizers_match_optax(optimizer):
    # Adam's normalised step lr·m̂/(√v̂ + ε) amplifies a gradient's rounding near zero, so
    # its rates stay small.
    top_lr = 0.1 if optimizer == "adam" else 0.5
    spec, x, y, params, lrs = _spec_case("tanh", ("sigmoid", "mse"), 1, lrs=(0.005, top_lr))
    kw = dict(optimizer=optimizer, momentum=0.8, epochs=15, log_every=4)
    assert_same_training(run_kernel(spec, x, y, params, lrs, **kw), reference(spec, x, y, params, lrs, **kw))


def test_pallas_loops_over_rows_with_penalties_shortcuts_and_sum_reduction():
    # 32 parity rows take the row loop; l1, l2, shortcuts and reduction=sum the rarer paths.
    spec, x, y, params, lrs = _spec_case("sigmoid", ("sigmoid", "bce"), 1, rows="many", lrs=(0.01, 0.3),
                                         shortcuts=True, reduction="sum")
    kw = dict(epochs=12, log_every=4, l1=1e-3, l2=1e-2)
    assert_same_training(run_kernel(spec, x, y, params, lrs, **kw), reference(spec, x, y, params, lrs, **kw))


def test_pallas_freezes_diverged_members_at_their_last_finite_params():
    # Depth 1: each epoch of a deeper linear net multiplies rounding by more huge factors.
    spec, x, y, params, lrs = _spec_case("identity", ("identity", "mse"), 1, lrs=(1e4, 1e4))
    kw = dict(optimizer="momentum", epochs=12, log_every=3)
    kernel = run_kernel(spec, x, y, params, lrs, **kw)
    assert bool(kernel[2].all())  # every member diverged ...
    assert all(bool(jnp.isfinite(leaf).all()) for leaf in jax.tree.leaves(kernel[0]))  # ... finite
    assert_same_training(kernel, reference(spec, x, y, params, lrs, **kw))
    # Frozen by epoch 6: the loss of the kept params (inf or NaN: the loss that diverged)
    # no longer changes.
    np.testing.assert_array_equal(kernel[3][2], kernel[3][3])


def test_pallas_blocks_resume_where_the_last_call_stopped():
    # Three calls of one block from epochs 0, 5 and 10 equal one call of three blocks.
    spec, x, y, params, lrs = _spec_case("sigmoid", ("sigmoid", "mse"), 1)
    common = dict(n_blocks=1, log_every=5, epochs=12, target_loss=0.05, optimizer="momentum", interpret=True)
    state = (pk.pack(params), None, jnp.full(MEMBERS, -1, jnp.int32), jnp.zeros(MEMBERS, bool))
    curves = []
    for first in (0, 5, 10):
        packed, opt, ett, div, curve = pk.train_blocks(spec, x, y, state[0], state[1], lrs, jnp.full(MEMBERS, 0.9),
                                                       state[2], state[3], first_epoch=first, **common)
        state = (packed, opt, ett, div)
        curves.append(curve)
    whole = pk.train_blocks(spec, x, y, pk.pack(params), None, lrs, jnp.full(MEMBERS, 0.9),
                            jnp.full(MEMBERS, -1, jnp.int32), jnp.zeros(MEMBERS, bool),
                            first_epoch=0, **{**common, "n_blocks": 3})
    np.testing.assert_array_equal(state[0], whole[0])
    np.testing.assert_array_equal(state[1], whole[1])
    np.testing.assert_array_equal(jnp.concatenate(curves), whole[4])
    # A block that starts at or past `epochs` changes nothing and samples NaN.
    after = pk.train_blocks(spec, x, y, *state[:2], lrs, jnp.full(MEMBERS, 0.9), *state[2:], first_epoch=15, **common)
    for got, want in zip(after[:4], state):
        np.testing.assert_array_equal(got, want)
    assert np.isnan(after[4]).all()


def _engine_case(activation, pair, depth, optimizer="sgd", hidden=2, target_loss=0.05, marks=()):
    output, loss = pair
    data_option = {"name": "encoder", "bits": 3} if output == "softmax" else {"name": "xor"}
    overrides = {"activation": activation, "output": output, "loss": loss, "depth": depth, "hidden": hidden,
                 "target_loss": target_loss, "optim": {"name": optimizer}, "data": data_option}
    # momentum 0.9 multiplies the step by up to 10, and deep linear nets explode early
    top_lr = 0.2 if optimizer == "momentum" or activation == output == "identity" else 0.5
    return pytest.param(overrides, top_lr, bool(not marks), marks=marks,
                        id=f"{activation}-{output}-{loss}-depth{depth}-{optimizer}-hidden{hidden}")


@pytest.mark.parametrize("overrides,top_lr,some_reach", [
    _engine_case("sigmoid", ("sigmoid", "mse"), 1, hidden=3, target_loss=0.13),  # the benchmark job
    _engine_case("tanh", ("softmax", "ce"), 2, optimizer="momentum", target_loss=0.1),
    *(_engine_case(*case, marks=pytest.mark.slow) for case in itertools.product(ACTIVATIONS, PAIRS, (1, 2))),
])
def test_pallas_matches_the_engine(overrides, top_lr, some_reach):
    cfg = config.from_dict({"num_seeds": MEMBERS, "epochs": 25, "log_every": 10,
                            "progress": False, "compile_cache": None, **overrides})
    ds = cfg.data.load(cfg.loss)
    spec = cfg.spec(ds.x_train.shape[1], ds.y_train.shape[1])
    lrs = jnp.geomspace(0.02, top_lr, MEMBERS).astype(jnp.float32)
    keys = jax.vmap(engine.seed_key)(jnp.arange(MEMBERS))
    params, metrics = jax.jit(jax.vmap(engine.make_train(cfg, ds)))(keys, lrs)
    momentum = cfg.optim.hyperparams().get("momentum", 0.0)
    got, ett, div, curve = run_kernel(spec, ds.x_train, ds.y_train, _initial(spec, cfg.init, MEMBERS), lrs,
                                      optimizer=cfg.optim.name, momentum=momentum, epochs=cfg.epochs,
                                      log_every=cfg.sample_every, target_loss=cfg.target_loss)
    final_loss = jax.vmap(lambda p: model.data_loss(spec, model.logits(spec, p, jnp.asarray(ds.x_train, jnp.float32)),
                                                    jnp.asarray(ds.y_train, jnp.float32)))(got)
    late = (ett < 0) & (final_loss <= cfg.target_loss)  # engine.finalize: reached at the very end
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(params)):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(curve.T, metrics["curve"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(final_loss, metrics["final_loss"], rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(jnp.where(late, cfg.epochs, ett), metrics["epochs_to_target"])
    np.testing.assert_array_equal(div, metrics["diverged"])
    if some_reach:  # the default cases' targets are set so that ett is compared both ways
        assert 0 < int((ett >= 0).sum()) < MEMBERS


def test_pallas_pack_and_unpack_are_inverse():
    spec = model.Spec((2, 3, 2), shortcuts=True)
    params = _random_params(spec, 5)
    packed = pk.pack(params)
    assert packed.shape == (pk.n_params(spec), 5) == (2 * 3 + 3 + 3 * 2 + 2 + 2 * 2, 5)
    for got, want in zip(jax.tree.leaves(pk.unpack(spec, packed)), jax.tree.leaves(params)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("spec,rows,features,optimizer,batch_size,reason", [
    (model.Spec((2, 3, 1)), 4, 2, "sgd", 2, "full batch"),
    (model.Spec((2, 3, 1)), 4, 2, "rmsprop", None, "optimizer"),
    (model.Spec((2, 3, 3, 3, 1)), 4, 2, "sgd", None, "depth 3"),
    (model.Spec((2, 32, 1)), 4, 2, "sgd", None, "width"),
    (model.Spec((16, 16, 16, 1)), 4, 16, "sgd", None, "parameters"),
    (model.Spec((2, 3, 1)), 5000, 2, "sgd", None, "rows"),
    (model.Spec((2, 3, 1)), 4, 3, "sgd", None, "features"),
])
def test_pallas_supports_refuses_out_of_scope_jobs_with_a_reason(spec, rows, features, optimizer,
                                                                 batch_size, reason):
    assert pk.supports(model.Spec((2, 3, 1)), 4, 2, "sgd", None) == (True, "")
    ok, why = pk.supports(spec, rows, features, optimizer, batch_size)
    assert not ok and reason in why
    if batch_size is not None:  # train_blocks is full batch by construction
        return
    with pytest.raises(ValueError, match=reason):
        x = np.zeros((rows, features))
        pk.train_blocks(spec, x, np.zeros((rows, spec.sizes[-1])), jnp.zeros((pk.n_params(spec), 1)), None,
                        jnp.ones(1), None, jnp.full(1, -1, jnp.int32), jnp.zeros(1, bool), first_epoch=0,
                        n_blocks=1, log_every=1, epochs=1, target_loss=0.0, optimizer=optimizer, interpret=True)


def test_bench_pallas_row_sits_beside_jaxbp_vmap(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    assert bench.main(["--quick", "--kernel", "pallas", "--impls", "jaxbp_vmap", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table["impl"]) == ["jaxbp_vmap", "jaxbp_pallas"] and (table["seed_epochs_per_s"] > 0).all()
    assert "jaxbp_pallas ÷ jaxbp_vmap" in capsys.readouterr().out
