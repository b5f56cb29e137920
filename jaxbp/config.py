"""The run configuration: one frozen, validated ``RunConfig``, and the checks that need data.

``RunConfig`` is both Hydra's typed schema and the object the engine takes. The ``data`` and
``optim`` fields hold one option dataclass each (:mod:`jaxbp.data`, :mod:`jaxbp.optim`), so
every key exists only where it means something. Every value is checked in ``__post_init__``,
so ``OmegaConf.to_object(composed)`` and :func:`from_dict` both give a validated config, and
a bad value raises :class:`ConfigError` naming its key. No JAX here, so a refused value
never starts it; the checks that need the data live in :mod:`jaxbp.plan`, the Hydra glue in
:mod:`jaxbp.app`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from jaxbp import data as datasets
from jaxbp import optim as optimizers
from jaxbp import spec as specs
from jaxbp.checks import ConfigError, check_choice, check_int, check_real, require

__all__ = ["ConfigError", "InitConfig", "RunConfig", "from_dict", "shape_key",
           "result_values", "refusal", "criterion_phrase"]

GRADS = ("manual", "autodiff")
CRITERIA = ("loss", "margin", "fahlman", "rms", "tss")
DTYPES = ("float32", "float64")
KERNELS = ("auto", "xla", "pallas")  # what trains the epochs (jaxbp.pallas_train.choose)
DISTRIBUTED = ("auto", "off")  # auto: join a multi-process job when the environment names one
MAX_EPOCHS = 2**31 - 2**20  # epoch counters are int32; leave room for a last block
MAX_WIDTH = 65_536  # a hidden layer wider than this is a typo, not an experiment
MAX_DEPTH = 64
MAX_CURVE_POINTS = 50_000_000  # curve_seeds × samples: 200 MB of float32 curves
# Keys that change how a job runs but not the numbers it produces (beyond rounding: the
# Pallas kernel equals the XLA engine to rtol 1e-5, so a finished job stays finished).
COSMETIC_KEYS = ("progress", "compile_cache", "devices", "max_members_per_chunk", "distributed", "kernel")


@dataclass(frozen=True)
class InitConfig:
    """How weights are drawn (``init.*``); see :func:`jaxbp.model.init`."""

    scheme: str = "normal"  # normal N(0,scale²) | uniform U[−scale,scale) | xavier | he
    scale: float = 1.0
    bias: str = "zeros"  # zeros | same (drawn like the weights)

    def __post_init__(self):
        check_choice("init.scheme", self.scheme, specs.INIT_SCHEMES)
        check_real("init.scale", self.scale, 0.0, low_open=True)
        check_choice("init.bias", self.bias, specs.BIAS_MODES)


def _representable(key: str, value: float, dtype: str) -> None:
    """``value`` must survive conversion to the run's float type (no inf, no 0)."""
    info = np.finfo(dtype)
    require(float(info.tiny) <= value <= float(info.max), key, value,
            f"a number in [{info.tiny:.3g}, {info.max:.3g}] for dtype={dtype}")


@dataclass(frozen=True)
class RunConfig:
    """Everything one job needs. Field names are the command-line keys."""

    lr: float = 0.5  # learning rate α in W ← W − α·∂E/∂W (traced: never recompiles)
    hidden: int = 3  # width of each hidden layer
    depth: int = 1  # number of hidden layers
    activation: str = "sigmoid"  # sigmoid | tanh | relu | identity
    output: str = "sigmoid"  # sigmoid | identity | softmax
    loss: str = "mse"  # mse (any output) | bce (sigmoid) | ce (softmax)
    num_seeds: int = 1000  # networks trained together: seeds seed .. seed+num_seeds-1
    seed: int = 0
    epochs: int = 5000
    batch_size: Optional[int] = None  # null = full batch; else minibatches, reshuffled each epoch
    shuffle: bool = True  # false: minibatches in the data's row order every epoch (PDP's per-pattern schedule)
    target_loss: float = 0.01  # criterion=loss: a seed converged when its train loss <= target_loss
    criterion: str = "loss"  # loss | margin (every output within `margin` of its target) | fahlman (40-20-40)
    margin: float = 0.5  # criterion=margin: Rumelhart et al.'s |output − target| < margin for every pattern
    target_rms: float = 0.1  # criterion=rms: √(mean over rows and outputs of (output − target)²) <= this
    target_tss: float = 0.04  # criterion=tss: Σ over rows and outputs of (output − target)² <= this (PDP's rule)
    loss_reduction: str = "mean"  # mean over rows | sum (1980s papers: their lr is ours × rows)
    shortcuts: bool = False  # weights from the inputs straight to the output layer
    log_every: int = 10  # loss-curve sampling interval, in epochs
    grad: str = "manual"  # manual (jaxbp.backprop) | autodiff (jax.grad)
    l1: float = 0.0  # penalty l1·Σ|W| (weights only)
    l2: float = 0.0  # penalty l2·½ΣW² (weights only)
    error_dead_zone: float = 0.0  # Fahlman: output errors |ŷ − y| below this count as zero (mse, grad=manual)
    sigmoid_prime_offset: float = 0.0  # Fahlman: added to every sigmoid unit's f′ in the backward (mse, grad=manual)
    patience: Optional[int] = None  # early stopping on the test loss (needs a test split)
    restart_after: Optional[int] = None  # restart a seed from fresh weights after this many epochs unsolved; null = off
    curve_seeds: int = 100  # how many seeds' loss curves are kept
    dtype: str = "float32"  # float32 | float64
    progress: bool = True  # progress bar on a terminal
    devices: Optional[int] = None  # shard seeds over this many local devices; None = all
    compile_cache: Optional[str] = "~/.cache/jaxbp/xla"  # JAX's persistent cache; null = off
    max_members_per_chunk: Optional[int] = None  # members per program call; null = what fits in memory
    distributed: str = "auto"  # auto: one job over the processes SLURM/TPU/JAXBP_* name (jaxbp.distributed) | off
    save_params: bool = True  # write every seed's final params to params.npz
    kernel: str = "auto"  # xla (the engine) | pallas (jaxbp.pallas_kernel; CPU: interpret mode) | auto (xla for now)
    init: InitConfig = field(default_factory=InitConfig)
    data: datasets.DataOption = field(default_factory=datasets.Xor)
    optim: optimizers.OptimOption = field(default_factory=optimizers.SGD)

    def __post_init__(self):
        check_choice("dtype", self.dtype, DTYPES)
        check_real("lr", self.lr, 0.0, low_open=True)
        _representable("lr", self.lr, self.dtype)
        check_int("hidden", self.hidden, 1, MAX_WIDTH)
        check_int("depth", self.depth, 0, MAX_DEPTH)
        check_choice("activation", self.activation, specs.ACTIVATION_NAMES)
        check_choice("output", self.output, specs.OUTPUT_NAMES)
        check_choice("loss", self.loss, specs.LOSS_OUTPUTS)
        require(self.output in specs.LOSS_OUTPUTS[self.loss], "loss", self.loss,
                f"loss={self.loss} needs output in {list(specs.LOSS_OUTPUTS[self.loss])} "
                f"(output is {self.output})")
        check_int("num_seeds", self.num_seeds, 1)
        check_int("seed", self.seed, 0)
        require(self.seed + self.num_seeds <= 2**32, "seed", self.seed, "seed + num_seeds <= 2**32")
        check_int("epochs", self.epochs, 1, MAX_EPOCHS)
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size, 1, allowed="null (full batch) or an integer >= 1")
            require(not getattr(self.optim, "full_batch_only", False), "batch_size", self.batch_size,
                    f"null: optim={self.optim.name} is a batch method (it compares successive "
                    "gradients of the same error)")
        # shuffle=false with full batch is accepted: one batch of every row has no order to fix.
        require(isinstance(self.shuffle, bool), "shuffle", self.shuffle, "true or false")
        check_real("target_loss", self.target_loss, 0.0)
        check_choice("criterion", self.criterion, CRITERIA)
        check_real("margin", self.margin, 0.0, low_open=True)
        check_real("target_rms", self.target_rms, 0.0)
        check_real("target_tss", self.target_tss, 0.0)
        check_choice("loss_reduction", self.loss_reduction, specs.REDUCTIONS)
        require(not (self.shortcuts and self.depth == 0), "shortcuts", self.shortcuts,
                "shortcuts connect the inputs to the output past hidden layers: set depth >= 1")
        check_int("log_every", self.log_every, 1)
        check_choice("grad", self.grad, GRADS)
        check_real("l1", self.l1, 0.0)
        check_real("l2", self.l2, 0.0)
        for key in ("error_dead_zone", "sigmoid_prime_offset"):
            value = getattr(self, key)
            check_real(key, value, 0.0)
            if value > 0:
                require(self.loss == "mse", key, value, f"0 with loss={self.loss}: Fahlman's conventions "
                        "bend the mse backward (bce and ce have no f′ to offset)")
                require(self.grad == "manual", key, value,
                        "0 with grad=autodiff: it lives in the hand-derived backward (grad=manual)")
        require(self.sigmoid_prime_offset == 0 or "sigmoid" in (self.activation, self.output),
                "sigmoid_prime_offset", self.sigmoid_prime_offset, "0: this network has no sigmoid unit")
        if self.patience is not None:
            check_int("patience", self.patience, 1, allowed="null (off) or an integer >= 1")
            require(self.data.test_fraction > 0, "patience", self.patience,
                    "early stopping watches the test loss: set data.test_fraction > 0")
        if self.restart_after is not None:
            check_int("restart_after", self.restart_after, 1, self.epochs - 1,
                      allowed=f"null (off) or an integer in [1, {self.epochs - 1}]: "
                              "epochs is the budget of all attempts")
            require(self.patience is None, "restart_after", self.restart_after,
                    "null with patience: early stopping watches one attempt's test loss")
        check_int("curve_seeds", self.curve_seeds, 0)
        points = min(self.curve_seeds, self.num_seeds) * (self.blocks + 1)
        require(points <= MAX_CURVE_POINTS, "curve_seeds", self.curve_seeds,
                f"curve_seeds × epochs/log_every <= {MAX_CURVE_POINTS:,} kept loss values "
                f"(this asks for {points:,}): raise log_every or lower curve_seeds")
        if self.devices is not None:
            check_int("devices", self.devices, 1, allowed="null (all local devices) or an integer >= 1")
        check_choice("distributed", self.distributed, DISTRIBUTED)
        check_choice("kernel", self.kernel, KERNELS)
        if self.max_members_per_chunk is not None:
            check_int("max_members_per_chunk", self.max_members_per_chunk, 1,
                      allowed="null (what fits in memory) or an integer >= 1")
        require(isinstance(self.init, InitConfig), "init", self.init, "an init config")
        require(isinstance(self.data, datasets.DataOption), "data", self.data, f"one of {sorted(datasets.OPTIONS)}")
        require(isinstance(self.optim, optimizers.OptimOption), "optim", self.optim,
                f"one of {sorted(optimizers.OPTIONS)}")

    # The block and curve arithmetic, in one place: epochs run in blocks of `sample_every`;
    # the curve holds the loss at each block's first epoch, then the final loss at `epochs`.
    @property
    def sample_every(self) -> int:
        """``log_every``, capped at ``epochs`` (a longer block would only skip epochs)."""
        return min(self.log_every, self.epochs)

    @property
    def blocks(self) -> int:
        """Blocks of ``sample_every`` epochs that cover ``epochs``."""
        return -(-self.epochs // self.sample_every)

    def curve_epochs(self) -> np.ndarray:
        """Epochs at which the curve is sampled: every ``sample_every`` from 0, then ``epochs``."""
        return np.append(np.arange(0, self.epochs, self.sample_every), self.epochs)

    def spec(self, n_in: int, n_out: int) -> specs.Spec:
        """The network for data with ``n_in`` features and ``n_out`` targets."""
        sizes = (n_in, *([self.hidden] * self.depth), n_out)
        return specs.Spec(sizes, self.activation, self.output, self.loss, self.loss_reduction, self.shortcuts)


def from_dict(values: Mapping[str, Any]) -> RunConfig:
    """A validated ``RunConfig`` from plain nested dicts, with each option's own defaults:
    ``{"data": {"name": "moons"}}`` trains on the same data as ``data=moons``.

    Raises:
        ConfigError: naming the first bad or unknown key.
    """
    values = dict(values)
    nested = {"init": _build(InitConfig, values.pop("init", None), "init.")}
    for key, options in (("data", datasets.OPTIONS), ("optim", optimizers.OPTIONS)):
        given = dict(values.pop(key, None) or {})
        name = given.get("name", RunConfig.__dataclass_fields__[key].default_factory.own_name())
        check_choice(key, name, sorted(options))
        nested[key] = _build(options[name], given, f"{key}.")
    return _build(RunConfig, {**values, **nested}, "")


def _build(cls, values: Mapping[str, Any] | None, prefix: str):
    values = dict(values or {})
    known = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        require(key in known, prefix + key, values[key], f"a known key: {sorted(known)}")
    return cls(**values)


def n_params(spec: specs.Spec) -> int:
    """Scalar parameters of a network: weights and biases of every layer (and shortcuts)."""
    shortcuts = spec.sizes[0] * spec.sizes[-1] if spec.shortcuts else 0
    return sum((a + 1) * b for a, b in zip(spec.sizes[:-1], spec.sizes[1:])) + shortcuts


def member_bytes(cfg: RunConfig, spec: specs.Spec, n_rows: int) -> int:
    """Rough bytes one member needs while training: params, gradients, optimiser moments,
    best params and the activations of one batch (each a float of ``dtype``)."""
    n_params_ = n_params(spec)
    rows = cfg.batch_size or n_rows
    activations = rows * sum(spec.sizes) * 3
    return (6 * n_params_ + activations) * np.dtype(cfg.dtype).itemsize


def result_values(cfg: RunConfig) -> dict[str, Any]:
    """The config as plain dicts without its cosmetic keys: equal values mean equal results."""
    values = dataclasses.asdict(cfg)
    return {k: v for k, v in values.items() if k not in COSMETIC_KEYS}


# Values a member carries as traced numbers (see engine.Hyper): jobs that differ only in them
# share one compiled program.
def shape_key(cfg: RunConfig) -> RunConfig:
    """The config with every traced or cosmetic value blanked: equal keys share programs.
    Penalties keep whether they are on, so a job without them never pays for them. The
    Pallas kernel reads only the learning rate and momentum per member, so under
    ``kernel=pallas`` the other traced values stay in the key."""
    blank = {"lr": 1.0, "seed": 0, "num_seeds": 1, "curve_seeds": 0, "progress": False, "compile_cache": None,
             "devices": None, "max_members_per_chunk": None, "distributed": "auto", "save_params": True,
             "init": dataclasses.replace(cfg.init, scale=1.0)}
    if cfg.kernel == "pallas":
        traced = [k for k in cfg.optim.hyperparams() if k == "momentum"]
        return dataclasses.replace(cfg, **blank, optim=dataclasses.replace(cfg.optim, **{k: 0.5 for k in traced}))
    defaults = type(cfg.optim)().hyperparams()  # valid for every option (0.5 is no Rprop η⁺)
    optim = dataclasses.replace(cfg.optim, **defaults)
    return dataclasses.replace(cfg, **blank, target_loss=0.0, margin=0.5, target_rms=0.0, target_tss=0.0,
                               l1=float(cfg.l1 > 0), error_dead_zone=float(cfg.error_dead_zone > 0),
                               sigmoid_prime_offset=float(cfg.sigmoid_prime_offset > 0),
                               l2=float(cfg.l2 > 0), optim=optim)


def success_words(values: Mapping[str, Any]) -> str:
    """What a converged seed did, in the job's criterion's own terms (a job's line, an atlas's)."""
    if values.get("criterion", "loss") == "loss":
        return f"reached loss ≤ {values['target_loss']:g}"  # the line's wording since the first release
    verb = "had" if values["criterion"] in ("margin", "fahlman") else "reached"
    return f"{verb} {criterion_phrase(values)}"


def criterion_phrase(values: Mapping[str, Any]) -> str:
    """What meeting a job's criterion means, in its own terms, from a config's values
    (``dataclasses.asdict(cfg)`` or ``summary.json``'s ``config``)."""
    criterion = values.get("criterion", "loss")
    if criterion == "margin":
        return f"every output within {values.get('margin', 0.5):g} of its target"
    if criterion == "fahlman":
        return "every output right by Fahlman's 40-20-40 rule"
    if criterion == "rms":
        return f"RMS error ≤ {values.get('target_rms', float('nan')):g}"
    if criterion == "tss":
        return f"total sum of squares ≤ {values.get('target_tss', float('nan')):g}"
    return f"train loss ≤ {values.get('target_loss', float('nan')):g}"


def refusal(err: ConfigError, job: str = "") -> str:
    """The few lines printed when a value is refused, with no traceback."""
    where = f" in job {job}" if job else ""
    return (f"jaxbp: invalid value{where}: {err.key}={err.value!r}\n"
            f"  allowed: {err.allowed}\n"
            "Nothing was trained and no results were written.")


def describe_options() -> dict[str, list[str]]:
    """Group -> option names, for help texts and tests."""
    return {"data": sorted(datasets.OPTIONS), "optim": sorted(optimizers.OPTIONS)}

