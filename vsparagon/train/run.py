"""The parts of a training run: built from the config, saved to a checkpoint and resumed from one.

:func:`setup` joins the processes and builds everything the loop in
:mod:`vsparagon.train.loop` needs: the model, its EMA, optimizer and loss, the optional
GAN :class:`Adversary`, and the data. :func:`snapshot` writes what :func:`resume_from`
reads back, so a resumed run continues exactly where the saved one stopped.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import platform
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader

from vsparagon.catalogue.table import DEFAULT_ARCH, architecture_of
from vsparagon.errors import CheckpointError, ConfigError
from vsparagon.models import checkpoint as model_files
from vsparagon.models.auxiliary import auxiliary_losses
from vsparagon.models.fusion import is_fused, load_fused_state
from vsparagon.models.registry import create, entry_of
from vsparagon.train import losses
from vsparagon.train.config import TrainConfig, to_plain
from vsparagon.train.data import StepBatches, TrainSamples, ValImage, validation_set, worker_init
from vsparagon.train.degrade import Pipeline
from vsparagon.train.state import TrainState, capture_rng, list_states, load_state, restore_rng, save_state

log = logging.getLogger("vsparagon.train")


@dataclass(frozen=True)
class Dist:
    """This process's place in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0 validates, logs and writes files."""
        return self.rank == 0


def setup_distributed(device: str) -> Dist:
    """Join the ``torchrun`` job if launched by it (gloo on CPU, NCCL on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(cfg: TrainConfig) -> str:
    """``cpu`` or ``cuda`` from ``train.device`` (clear error when CUDA is asked for and absent)."""
    want = cfg.train.device
    if want == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is cuda but PyTorch sees no CUDA device; use auto or cpu")
    device = "cuda" if want == "cuda" or (want == "auto" and torch.cuda.is_available()) else "cpu"
    if cfg.optim.amp == "fp16" and device == "cpu":
        raise ConfigError("optim.amp: fp16 needs CUDA; on the CPU use bf16 or none")
    if cfg.optim.amp == "bf16" and device == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("optim.amp: this GPU has no bf16; use fp16")
    return device


def hardware(device: str, threads: int, world: int) -> str:
    """A short description of what trained, e.g. ``1 x NVIDIA H100 80GB HBM3`` or ``CPU (AMD EPYC ...), 2 threads``."""
    if device == "cuda":
        return f"{world} x {torch.cuda.get_device_name()}"
    name = platform.processor() or "CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{world} x CPU process ({name}), {threads} thread(s) each"


def lr_factor(step: int, *, warmup: int, total: int, floor: float) -> float:
    """Linear warmup to 1, then cosine decay to ``floor``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


class Objective(nn.Module):
    """The weighted sum of the configured losses, with its parts for logging."""

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__()
        self.cfg = cfg.loss
        per = cfg.loss.perceptual
        self.vgg = losses.VGGFeatures(per.weights_path, per.layers) if per.weight > 0 else None

    def forward(self, sr: torch.Tensor, hr: torch.Tensor, model: nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        c = self.cfg
        sr32 = sr.float()
        pixel = {"charbonnier": losses.charbonnier, "l1": losses.l1, "mse": losses.mse}[c.pixel](sr32, hr)
        total = c.pixel_weight * pixel
        parts = {"pixel": float(pixel.detach())}
        if c.ms_ssim > 0:
            term = 1 - losses.ms_ssim(sr32.clamp(0, 1), hr)
            total, parts["ms_ssim"] = total + c.ms_ssim * term, float(term.detach())
        if c.fft > 0:
            term = losses.fft_loss(sr32, hr)
            total, parts["fft"] = total + c.fft * term, float(term.detach())
        if self.vgg is not None:
            term = self.vgg(sr32, hr)
            total, parts["perceptual"] = total + c.perceptual.weight * term, float(term.detach())
        if c.anti_ringing > 0:
            term = losses.anti_ringing(sr32, hr)
            total, parts["anti_ringing"] = total + c.anti_ringing * term, float(term.detach())
        aux = losses.aux_losses(model)
        if aux is not None and c.aux_weight > 0:
            total, parts["aux"] = total + c.aux_weight * aux, float(aux.detach())
        if c.aux_weight > 0:  # router losses of the model's mixture blocks, weighted inside the blocks
            for name, term in auxiliary_losses(model).items():
                total, parts[f"aux_{name}"] = total + c.aux_weight * term.float(), float(term.detach())
        return total, parts


@dataclass
class Adversary:
    """The GAN part of a run (``loss.gan.weight > 0``): a discriminator and its own optimizer."""

    disc: nn.Module
    ddp: nn.Module
    """``disc`` as the steps call it: wrapped in DDP when there are several processes."""
    opt: torch.optim.Optimizer
    sched: LambdaLR
    weight: float
    """How much the adversarial term counts in the model's loss."""
    start: int
    """The first step (0-based) that uses it."""

    def active(self, step: int) -> bool:
        """Whether ``step`` (0-based) trains against the discriminator."""
        return step >= self.start


@dataclass
class Run:
    """Everything one process of a run holds: built by :func:`setup`, saved by :func:`snapshot`."""

    cfg: TrainConfig
    out: Path
    """The run folder: checkpoints/, log.jsonl, curves.png, crops/, the release files."""
    device: str
    job: Dist
    threads: int
    """CPU threads of this process (recorded in the run history)."""
    model: nn.Module
    ddp: nn.Module
    """``model`` as the steps call it: wrapped in DDP when there are several processes."""
    ema: nn.Module | None
    """The exponential moving average of ``model`` (``optim.ema > 0``); validated and released."""
    objective: Objective
    opt: torch.optim.Optimizer
    sched: LambdaLR
    scaler: torch.amp.GradScaler
    gan: Adversary | None
    autocast: AbstractContextManager[Any]
    """Mixed precision as ``optim.amp`` asks (a no-op for ``none``)."""
    samples: TrainSamples
    """Training pairs by global index; :func:`step_loader` batches them from ``start`` on."""
    val_set: list[ValImage]
    """Validation pictures (rank 0 only; empty elsewhere)."""
    start: int = 0
    """The step this process started from (0, or the resumed checkpoint's)."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """Earlier processes' segments of the run, from the resumed checkpoint."""
    last_ckpt: Path | None = None
    """The newest checkpoint written (or resumed from): the one to fall back to."""


def setup(cfg: TrainConfig, out: Path, *, resume: bool) -> Run:
    """Join the job, build the model, optimizers and data and, with ``resume``, load the newest checkpoint.

    User errors (bad data, missing weights, a folder that holds another run) are raised
    here, before anything is written.
    """
    device = pick_device(cfg)
    job = setup_distributed(device)
    if device == "cuda":
        torch.cuda.set_device(job.local_rank)
    threads = cfg.train.threads or max(1, (os.cpu_count() or 1) // job.world)
    torch.set_num_threads(threads)
    newest = newest_checkpoint(out, resume=resume)

    # the same seed on every rank gives the same initial weights
    seed = cfg.train.seed
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    model = build_model(cfg)
    if cfg.model.init:
        load_initial(model, Path(cfg.model.init), strict=cfg.model.init_strict, log_main=job.main)
    model.to(device).train()
    ema = copy.deepcopy(model).eval().requires_grad_(False) if cfg.optim.ema > 0 else None
    objective = Objective(cfg).to(device)  # checks the perceptual weights file before any step
    gan = build_adversary(cfg, device) if cfg.loss.gan.weight > 0 else None
    opt = adamw(cfg, model.parameters(), cfg.optim.lr)
    run = Run(
        cfg=cfg,
        out=out,
        device=device,
        job=job,
        threads=threads,
        model=model,
        ddp=model,
        ema=ema,
        objective=objective,
        opt=opt,
        sched=schedule(cfg, opt),
        scaler=torch.amp.GradScaler(device, enabled=cfg.optim.amp == "fp16"),
        gan=gan,
        # the data is scanned now: empty or too-small data fails before the first step
        samples=TrainSamples(cfg.data, Pipeline(cfg.degradation), scale=cfg.model.scale, seed=seed),
        val_set=validation_set(cfg.data, scale=cfg.model.scale, seed=seed) if job.main else [],
        autocast=mixed_precision(cfg, device),
    )
    if newest is not None:
        resume_from(run, newest)
    if job.world > 1:  # wrapped after resuming: DDP starts every rank from rank 0's weights
        ids = [job.local_rank] if device == "cuda" else None
        run.ddp = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if gan is not None:
            gan.ddp = nn.parallel.DistributedDataParallel(gan.disc, device_ids=ids)
    return run


def build_model(cfg: TrainConfig) -> nn.Module:
    """The training form the ``model`` section describes: variant, scale, options (ParagonSR: the gate)."""
    gate = cfg.model.gate if architecture_of(cfg.model.variant).name == DEFAULT_ARCH else None
    return create(cfg.model.variant, cfg.model.scale, gate=gate, **cfg.model.options)


def newest_checkpoint(out: Path, *, resume: bool) -> Path | None:
    """The checkpoint to resume from (``None`` for a fresh run); refuses to mix two runs in one folder."""
    ckpt_dir = out / "checkpoints"
    previous = list_states(ckpt_dir)
    if previous and not resume:
        raise ConfigError(
            f"{out} already holds a run (checkpoints up to step {previous[-1][0]}); "
            "pass --resume to continue it, or choose another --out"
        )
    if resume and not previous:
        raise ConfigError(f"--resume: no checkpoint in {ckpt_dir}; start without --resume")
    return previous[-1][1] if previous else None


def adamw(cfg: TrainConfig, params: Iterator[nn.Parameter], lr: float) -> torch.optim.AdamW:
    """The optimizer of the model and of the discriminator."""
    return torch.optim.AdamW(params, lr=lr, betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay)


def schedule(cfg: TrainConfig, opt: torch.optim.Optimizer) -> LambdaLR:
    """Warmup then cosine decay over the whole run (:func:`lr_factor`)."""
    return LambdaLR(
        opt, lambda s: lr_factor(s, warmup=cfg.optim.warmup, total=cfg.train.iters, floor=cfg.optim.min_lr_ratio)
    )


def build_adversary(cfg: TrainConfig, device: str) -> Adversary:
    """A fresh discriminator as ``loss.gan`` describes it, with its optimizer and schedule."""
    gan = cfg.loss.gan
    disc = losses.make_discriminator(gan.discriminator, gan.channels).to(device)
    opt = adamw(cfg, disc.parameters(), gan.lr)
    return Adversary(disc, disc, opt, schedule(cfg, opt), weight=gan.weight, start=gan.start)


def mixed_precision(cfg: TrainConfig, device: str) -> AbstractContextManager[Any]:
    """Autocast to ``optim.amp`` (bf16 or fp16), or nothing."""
    if cfg.optim.amp == "none":
        return nullcontext()
    return torch.autocast(device, dtype=torch.bfloat16 if cfg.optim.amp == "bf16" else torch.float16)


def step_loader(run: Run) -> DataLoader[Any]:
    """Micro-batches for steps ``start..train.iters-1``: this process's share of each (see :class:`StepBatches`)."""
    cfg = run.cfg
    batches = StepBatches(
        start=run.start,
        iters=cfg.train.iters,
        batch=cfg.data.batch,
        accumulate=cfg.optim.accumulate,
        rank=run.job.rank,
        world=run.job.world,
    )
    return DataLoader(
        run.samples,
        batch_sampler=batches,
        num_workers=cfg.data.workers,
        worker_init_fn=worker_init,
        pin_memory=run.device == "cuda",
        # Its own generator: starting the loader draws a seed, which from the global generator would
        # shift the model's random draws (stochastic depth, dropout, noise) after a resume.
        generator=torch.Generator().manual_seed(cfg.train.seed),
    )


def resume_from(run: Run, path: Path) -> None:
    """Load the checkpoint at ``path`` into ``run``: weights, optimizers, schedules, RNG and the step."""
    state = load_state(path)
    cfg = run.cfg
    trained = {k: state.config["model"].get(k) for k in ("variant", "scale")}
    trained["gate"] = trained_gate(state.config)
    trained["options"] = state.config["model"].get("options", {})
    wanted = {"variant": cfg.model.variant, "scale": cfg.model.scale, "gate": cfg.model.gate}
    if trained != {**wanted, "options": cfg.model.options}:
        raise CheckpointError(
            f"{path}: trained a different model ({state.config['model']}); resume needs the same model section"
        )
    run.model.load_state_dict(state.modules["model"])
    if run.ema is not None:
        run.ema.load_state_dict(state.modules.get("ema", state.modules["model"]))
    run.opt.load_state_dict(state.optimizers["opt"])
    run.sched.load_state_dict(state.extra["sched"])
    if run.gan is not None and "disc" in state.modules:  # else the GAN was switched on since: it starts fresh
        run.gan.disc.load_state_dict(state.modules["disc"])
        run.gan.opt.load_state_dict(state.optimizers["opt_d"])
        run.gan.sched.load_state_dict(state.extra["sched_d"])
    run.scaler.load_state_dict(state.extra.get("scaler", {}) or run.scaler.state_dict())
    restore_rng(state.rng)
    run.start = state.step
    run.history = list(state.extra.get("history") or [])
    run.last_ckpt = path
    if run.job.main:
        log.info("resuming %s from step %d (%s)", run.out, run.start, path.name)


def snapshot(run: Run, step: int, started: float) -> Path | None:
    """Save ``step`` as a checkpoint (rank 0) and wait for every process; returns the newest checkpoint.

    Args:
        run: the run.
        step: steps done.
        started: when this process's first step began (``time.perf_counter()``), for the run history.
    """
    if run.job.main:
        modules = {"model": run.model.state_dict()}
        if run.ema is not None:
            modules["ema"] = run.ema.state_dict()
        optimizers = {"opt": run.opt.state_dict()}
        extra: dict[str, Any] = {
            "sched": run.sched.state_dict(),
            "scaler": run.scaler.state_dict(),
            "history": [*run.history, segment(run, step, started)],
        }
        if run.gan is not None:
            modules["disc"] = run.gan.disc.state_dict()
            optimizers["opt_d"] = run.gan.opt.state_dict()
            extra["sched_d"] = run.gan.sched.state_dict()
        state = TrainState(step, to_plain(run.cfg), modules, optimizers, extra, capture_rng())
        run.last_ckpt = save_state(state, run.out / "checkpoints", keep_last=run.cfg.train.keep_last)
    if run.job.world > 1:
        dist.barrier()
    return run.last_ckpt


def segment(run: Run, step: int, started: float) -> dict[str, Any]:
    """This process's part of the run: steps, wall seconds and hardware (model cards report them)."""
    return {
        "from": run.start,
        "to": step,
        "seconds": round(time.perf_counter() - started, 1),
        "hardware": hardware(run.device, run.threads, run.job.world),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }


def load_initial(model: nn.Module, path: Path, *, strict: bool, log_main: bool = True) -> list[str]:
    """Load ``model.init`` into ``model``; returns the names of tensors left at their fresh weights.

    Strict: names and shapes must match exactly (else ConfigError). Not strict: only tensors
    whose name and shape match are taken; the others keep their fresh init and are logged
    (fewer than half fitting is an error: that is another variant, not another scale).
    """
    weights = initial_weights(path, arch=entry_of(model).name)
    own = model.state_dict()
    if strict:
        try:
            model.load_state_dict(weights)
        except RuntimeError as exc:
            first = " ".join(str(exc).split())[:300]
            raise ConfigError(
                f"model.init: {path} does not fit this model ({first}); "
                "set model.init_strict: false to take only the tensors that match"
            ) from None
        return []
    taken = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    if len(taken) < len(own) / 2:
        raise ConfigError(
            f"model.init: only {len(taken)} of this model's {len(own)} tensors fit {path} (another variant?)"
        )
    model.load_state_dict(taken, strict=False)
    fresh = sorted(k for k in own if k not in taken)
    if log_main:
        log.info(
            "model.init: took %d of %d tensors from %s; fresh: %s",
            len(taken),
            len(own),
            path.name,
            ", ".join(fresh) or "none",
        )
    return fresh


def initial_weights(path: Path, *, arch: str | None = None) -> dict[str, torch.Tensor]:
    """Weights to start from: a training checkpoint's EMA (else its model), or a model file.

    A fused (shipped) model file is turned back into the training form with
    :func:`load_fused_state`: the same function, with the extra branches starting at zero.
    ``arch`` (the model being trained) refuses a file of another architecture with a CheckpointError naming both.
    """
    if not path.is_file():
        raise ConfigError(f"model.init: {path} not found")
    try:
        state = load_state(path)
    except CheckpointError:
        stored = model_files.load(path, arch=arch)
        if not is_fused(stored):
            return stored.state_dict()
        trainable = entry_of(stored).module(stored.cfg, variant=stored.variant)
        load_fused_state(trainable, stored.state_dict())
        return trainable.state_dict()
    trained = architecture_of(str(state.config.get("model", {}).get("variant", "tiny"))).name
    if arch is not None and trained != arch:
        raise CheckpointError(
            f"model.init: {path} is a training checkpoint of a {trained} model, not a {arch} one; "
            f"start from a {arch} checkpoint, or remove model.init"
        )
    return state.modules.get("ema", state.modules["model"])


def trained_gate(stored_config: dict[str, Any]) -> str:
    """The block design a training state's stored config trained: states from before the
    design was a setting (no ``model.gate``) trained the original ``gelu`` gate."""
    return str(stored_config.get("model", {}).get("gate", "gelu"))


__all__ = [
    "Adversary",
    "Dist",
    "Objective",
    "Run",
    "build_model",
    "hardware",
    "initial_weights",
    "load_initial",
    "lr_factor",
    "pick_device",
    "resume_from",
    "setup",
    "setup_distributed",
    "snapshot",
    "step_loader",
]
