"""``kernel=auto|xla|pallas``: the Pallas kernel as the runner's second path.

The kernel's maths is tested against the engine and a plain loop in ``test_pallas.py``; here,
that a job run with ``kernel=pallas`` (interpret mode on the CPU) gives the XLA engine's
files, that the choice is recorded and refused like any other value, that the launcher
fuses only what one kernel call can train, and that the kernel lowers to Triton for a GPU."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

from cli import run_in_process
from jaxbp import config, model, pallas_train, runner
from jaxbp import pallas_kernel as pk

RTOL, ATOL = 1e-5, 1e-6  # test_pallas.py explains the float32 tolerance


def _cfg(**overrides) -> config.RunConfig:
    values = {"num_seeds": 37, "epochs": 40, "log_every": 10, "curve_seeds": 5, "progress": False,
              "compile_cache": None, **overrides}
    return config.from_dict(values)


@pytest.mark.parametrize("optim,lr,target", [("sgd", 5.0, 0.123), ("momentum", 0.5, 0.1245), ("adam", 0.1, 0.09)])
def test_pallas_setting_trains_like_the_xla_engine(optim, lr, target):
    lrs = np.geomspace(lr / 4, lr, 37)  # per-member rates, as a fused sweep has them
    results = {kernel: runner.run(_cfg(kernel=kernel, optim={"name": optim}, target_loss=target), lrs=lrs)
               for kernel in ("xla", "pallas")}
    xla, pallas = results["xla"], results["pallas"]
    assert (xla.kernel, pallas.kernel) == ("xla", "pallas")
    for key in ("final_loss", "train_acc"):
        np.testing.assert_allclose(pallas.metrics[key], xla.metrics[key], rtol=RTOL, atol=ATOL)
    for key in ("epochs_to_target", "converged", "diverged", "stopped_epoch"):
        np.testing.assert_array_equal(pallas.metrics[key], xla.metrics[key])
    assert 0 < xla.metrics["converged"].sum() < 37, "the target splits the members: both outcomes compared"
    np.testing.assert_allclose(pallas.curves, xla.curves, rtol=RTOL, atol=ATOL)
    for got, want in zip(jax.tree.leaves(pallas.params), jax.tree.leaves(xla.params)):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_pallas_setting_splits_chunks_keeps_later_curves_and_takes_given_params():
    cfg = {"max_members_per_chunk": 16, "target_loss": 0.123}  # 37 members: three chunks
    picks = np.array([0, 20, 36])  # curves from the first and the last chunk
    start = runner.run(_cfg(kernel="xla", epochs=1, **cfg)).params  # some other initial weights
    results = {kernel: runner.run(_cfg(kernel=kernel, lr=5.0, **cfg), curve_members=picks, init_params=start)
               for kernel in ("xla", "pallas")}
    xla, pallas = results["xla"], results["pallas"]
    np.testing.assert_allclose(pallas.curves, xla.curves, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(pallas.metrics["final_loss"], xla.metrics["final_loss"], rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(pallas.metrics["epochs_to_target"], xla.metrics["epochs_to_target"])
    assert not np.isnan(pallas.curves).any() and pallas.kernel == "pallas"


def test_pallas_sweep_fuses_lrs_but_not_widths(tmp_path, monkeypatch):
    real_run, groups = runner.run, []
    monkeypatch.setattr(runner, "run", lambda cfg, **kw: groups.append(len(kw["seeds"])) or real_run(cfg, **kw))
    status = run_in_process(monkeypatch, "-m", "kernel=pallas", "hidden=2,3", "lr=0.5,1", "num_seeds=4",
                            "epochs=10", "progress=false", f"hydra.sweep.dir={tmp_path / 'sw'}")
    assert status == 0 and groups == [8, 8], "one program per width, each with both learning rates"


def test_pallas_setting_is_recorded_in_summary_json(tmp_path, monkeypatch):
    for kernel, ran in (("pallas", "pallas"), ("auto", "xla")):
        out = tmp_path / kernel
        status = run_in_process(monkeypatch, f"kernel={kernel}", "num_seeds=8", "epochs=20", "progress=false",
                                f"hydra.run.dir={out}")
        assert status == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["kernel"] == ran and summary["config"]["kernel"] == kernel


@pytest.mark.parametrize("override,reason", [("batch_size=2", "full batch"), ("optim=rmsprop", "optimizer"),
                                             ("criterion=margin", "criterion")])
def test_pallas_setting_refuses_a_job_the_kernel_cannot_train(tmp_path, monkeypatch, capsys, override, reason):
    out = tmp_path / "run"
    status = run_in_process(monkeypatch, "kernel=pallas", override, "num_seeds=4", "epochs=5",
                            f"hydra.run.dir={out}")
    err = capsys.readouterr().err
    assert status == 2 and "kernel" in err and reason in err and "Nothing was trained" in err
    assert not out.exists()


def test_pallas_auto_picks_the_kernel_only_on_a_gpu_and_only_for_jobs_it_can_train(monkeypatch):
    fits, too_wide = _cfg(kernel="auto"), _cfg(kernel="auto", hidden=40)
    table = lambda cfg: runner.member_table(cfg)[1]  # noqa: E731
    chosen = lambda cfg: pallas_train.choose(cfg, runner.program_for(cfg), table(cfg), False)  # noqa: E731
    assert chosen(fits) == "xla", "the kernel's GPU speed is unmeasured: auto keeps XLA"
    monkeypatch.setattr(pallas_train, "AUTO_PICKS_PALLAS_ON_GPU", True)
    assert chosen(fits) == "xla", "on the CPU the kernel only interprets"
    monkeypatch.setattr(pallas_train.jax, "default_backend", lambda: "gpu")
    assert chosen(fits) == "pallas" and chosen(too_wide) == "xla"
    mixed = {**table(fits), "l2": np.linspace(0, 1e-3, fits.num_seeds)}
    assert pallas_train.choose(fits, runner.program_for(fits), mixed, False) == "xla"
    assert pallas_train.choose(fits, runner.program_for(fits), table(fits), True) == "xla"
    with pytest.raises(config.ConfigError, match="l2"):
        pallas_train.choose(_cfg(kernel="pallas"), runner.program_for(fits), mixed, False)


def test_pallas_jobs_fuse_only_when_one_kernel_call_can_train_them():
    key = lambda **kw: config.shape_key(_cfg(**kw))  # noqa: E731
    for kernel in ("xla", "pallas"):  # per-member values in both
        assert key(kernel=kernel, lr=0.1) == key(kernel=kernel, lr=2.0)
        assert key(kernel=kernel, optim={"name": "momentum", "momentum": 0.5}) == \
            key(kernel=kernel, optim={"name": "momentum", "momentum": 0.9})
    # baked into the kernel: separate programs under kernel=pallas only
    for one, other in (({"l2": 1e-3}, {"l2": 2e-3}), ({"target_loss": 0.05}, {"target_loss": 0.1}),
                       ({"optim": {"name": "adam"}}, {"optim": {"name": "adam", "b1": 0.8}})):
        assert key(kernel="xla", **one) == key(kernel="xla", **other)
        assert key(kernel="pallas", **one) != key(kernel="pallas", **other)
    assert key(kernel="xla") != key(kernel="pallas")


TRITON = "__gpu$xla.gpu.triton"  # the custom call a Pallas kernel lowers to on a GPU


def _lowered_for_cuda(fn, shapes) -> str:
    """``fn``'s StableHLO module as lowered for a CUDA GPU (no GPU needed to lower)."""
    allow_triton = export.DisabledSafetyCheck.custom_call(TRITON)
    return export.export(jax.jit(fn), platforms=["cuda"], disabled_checks=[allow_triton])(*shapes).mlir_module()


SPECS = [  # (spec, rows, optimizer): every output/loss pair, both depths, the row loop, adam
    (model.Spec((2, 3, 1)), 4, "sgd"),
    (model.Spec((2, 4, 4, 1), "tanh", "identity"), 4, "momentum"),
    (model.Spec((3, 5, 3), "relu", "softmax", "ce"), 8, "nesterov"),
    (model.Spec((5, 4, 1), "sigmoid", "sigmoid", "bce", shortcuts=True), 32, "adam"),
]


@pytest.mark.parametrize("spec,rows,optimizer", SPECS, ids=lambda v: getattr(v, "sizes", v))
def test_pallas_kernel_lowers_to_triton_for_a_gpu(spec, rows, optimizer):
    """The GPU kernel is built on the CPU machine: every operation must have a Triton
    lowering (what interpret mode cannot check). Compiling it needs a GPU."""
    x = np.random.default_rng(0).integers(0, 2, (rows, spec.sizes[0])).astype(np.float32)
    y = np.eye(spec.sizes[-1], dtype=np.float32)[np.arange(rows) % spec.sizes[-1]][:, : spec.sizes[-1]]
    members, P = 256, pk.n_params(spec)

    def train(packed, lr, mu, ett, div):
        return pk.train_blocks(spec, x, y, packed, None, lr, mu, ett, div, first_epoch=0, n_blocks=2,
                               log_every=5, epochs=10, target_loss=0.01, optimizer=optimizer, l2=1e-4)

    shapes = [jax.ShapeDtypeStruct(s, d) for s, d in (((P, members), jnp.float32), ((members,), jnp.float32),
                                                       ((members,), jnp.float32), ((members,), jnp.int32),
                                                       ((members,), jnp.bool_))]
    assert _lowered_for_cuda(train, shapes).count(TRITON) == 1


def test_pallas_kernel_lowers_to_triton_in_float64(x64):
    spec, members = model.Spec((2, 3, 1)), 128
    x, y = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float), np.array([[0], [1], [1], [0]], float)

    def train(packed, lr):
        n = lr.shape[0]
        return pk.train_blocks(spec, x, y, packed, None, lr, lr, jnp.full(n, -1, jnp.int32), jnp.zeros(n, bool),
                               first_epoch=0, n_blocks=1, log_every=5, epochs=5, target_loss=0.01,
                               optimizer="momentum")

    shapes = [jax.ShapeDtypeStruct((pk.n_params(spec), members), jnp.float64),
              jax.ShapeDtypeStruct((members,), jnp.float64)]
    assert "f64" in _lowered_for_cuda(train, shapes)
