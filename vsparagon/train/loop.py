"""The training loop: config in, resumable checkpoints, logs, and a fused release model out.

Read it top to bottom: :func:`train` sets up (processes, model, optimizers, data),
then runs steps; each step accumulates micro-batch gradients, checks the loss is
finite, clips, steps the optimizer and schedule, updates the EMA, and now and then
validates and saves. Under ``torchrun`` each process takes its share of every global
batch (see :class:`~vsparagon.train.data.StepBatches`) and DDP averages gradients.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import platform
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from vsparagon.errors import CheckpointError, ConfigError, ParagonError
from vsparagon.models import checkpoint as model_files
from vsparagon.models.fusion import fuse, is_fused, load_fused_state
from vsparagon.models.paragonsr.arch import ParagonSR
from vsparagon.models.registry import create
from vsparagon.train import losses
from vsparagon.train.config import TrainConfig, to_plain
from vsparagon.train.data import StepBatches, TrainSamples, ValImage, validation_set, worker_init
from vsparagon.train.degrade import Pipeline
from vsparagon.train.metrics import psnr_y, ssim_y
from vsparagon.train.report import Progress, RunLog, format_duration, plot_curves, save_crops
from vsparagon.train.state import TrainState, capture_rng, list_states, load_state, restore_rng, save_state

log = logging.getLogger("vsparagon.train")


class TrainingDiverged(ParagonError):
    """The loss or gradients stopped being finite."""


@dataclass(frozen=True)
class RunResult:
    """What a finished (or stopped) run produced."""

    step: int
    out: Path
    checkpoint: Path | None
    release: Path | None
    onnx: Path | None
    it_per_s: float
    samples_per_s: float


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


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    """``ema = d * ema + (1 - d) * model``, with ``d`` ramped up over the first steps."""
    d = min(decay, (1 + step) / (10 + step))
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p.detach(), 1 - d)


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
        pixel = losses.charbonnier(sr32, hr) if c.pixel == "charbonnier" else losses.l1(sr32, hr)
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
        aux = losses.aux_losses(model)
        if aux is not None and c.aux_weight > 0:
            total, parts["aux"] = total + c.aux_weight * aux, float(aux.detach())
        return total, parts


def train(cfg: TrainConfig, out: Path, *, resume: bool = False, stop_at: int | None = None) -> RunResult:
    """Run (or continue) the training described by ``cfg``, writing into ``out``.

    Args:
        cfg: the checked config.
        out: run folder: checkpoints/, log.jsonl, curves.png, crops/, the release files.
        resume: continue from the newest checkpoint in ``out/checkpoints``.
        stop_at: stop (after saving) once this many steps are done, as an interruption would.

    Raises:
        ConfigError: bad data or settings, found before the first step.
        TrainingDiverged: a non-finite loss; the last good checkpoint is kept.
        CheckpointError: a checkpoint could not be written or read.
    """
    device = pick_device(cfg)
    rank = setup_distributed(device)
    if device == "cuda":
        torch.cuda.set_device(rank.local_rank)
    threads = cfg.train.threads or max(1, (os.cpu_count() or 1) // rank.world)
    torch.set_num_threads(threads)
    seed = cfg.train.seed
    ckpt_dir = out / "checkpoints"
    previous = list_states(ckpt_dir)
    if previous and not resume:
        raise ConfigError(
            f"{out} already holds a run (checkpoints up to step {previous[-1][0]}); "
            "pass --resume to continue it, or choose another --out"
        )
    if resume and not previous:
        raise ConfigError(f"--resume: no checkpoint in {ckpt_dir}; start without --resume")

    # ---- model, EMA, optimizers (the same seed on every rank gives the same initial weights)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    model = create(cfg.model.variant, cfg.model.scale)
    if cfg.model.init:
        load_initial(model, Path(cfg.model.init), strict=cfg.model.init_strict, log_main=rank.main)
    model.to(device).train()
    ema = copy.deepcopy(model).eval().requires_grad_(False) if cfg.optim.ema > 0 else None
    objective = Objective(cfg).to(device)  # checks the perceptual weights file before any step
    gan = cfg.loss.gan
    disc = losses.make_discriminator(gan.discriminator, gan.channels).to(device) if gan.weight > 0 else None

    def adamw(params: Iterator[nn.Parameter], lr: float) -> torch.optim.AdamW:
        return torch.optim.AdamW(params, lr=lr, betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay)

    def schedule(opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: lr_factor(s, warmup=cfg.optim.warmup, total=cfg.train.iters, floor=cfg.optim.min_lr_ratio)
        )

    opt = adamw(model.parameters(), cfg.optim.lr)
    sched = schedule(opt)
    opt_d = adamw(disc.parameters(), gan.lr) if disc is not None else None
    sched_d = schedule(opt_d) if opt_d is not None else None
    scaler = torch.amp.GradScaler(device, enabled=cfg.optim.amp == "fp16")

    # ---- data (scanned before training: empty or too-small data fails here)
    samples = TrainSamples(cfg.data, Pipeline(cfg.degradation), scale=cfg.model.scale, seed=seed)
    val_set = validation_set(cfg.data, scale=cfg.model.scale, seed=seed) if rank.main else []

    # ---- resume
    start = 0
    history: list[dict[str, Any]] = []  # earlier processes' segments, from the resumed state
    if resume:
        path = previous[-1][1]
        state = load_state(path)
        trained = {k: state.config["model"].get(k) for k in ("variant", "scale")}
        if trained != {"variant": cfg.model.variant, "scale": cfg.model.scale}:
            raise CheckpointError(
                f"{path}: trained a different model ({state.config['model']}); resume needs the same model section"
            )
        model.load_state_dict(state.modules["model"])
        if ema is not None:
            ema.load_state_dict(state.modules.get("ema", state.modules["model"]))
        opt.load_state_dict(state.optimizers["opt"])
        sched.load_state_dict(state.extra["sched"])
        if disc is not None and opt_d is not None and sched_d is not None and "disc" in state.modules:
            disc.load_state_dict(state.modules["disc"])
            opt_d.load_state_dict(state.optimizers["opt_d"])
            sched_d.load_state_dict(state.extra["sched_d"])
        scaler.load_state_dict(state.extra.get("scaler", {}) or scaler.state_dict())
        restore_rng(state.rng)
        start = state.step
        history = list(state.extra.get("history") or [])
        if rank.main:
            log.info("resuming %s from step %d (%s)", out, start, path.name)

    ddp: nn.Module = model
    if rank.world > 1:
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=[rank.local_rank] if device == "cuda" else None)
    disc_ddp: nn.Module | None = disc
    if disc is not None and rank.world > 1:
        disc_ddp = nn.parallel.DistributedDataParallel(disc, device_ids=[rank.local_rank] if device == "cuda" else None)

    batches = StepBatches(
        start=start,
        iters=cfg.train.iters,
        batch=cfg.data.batch,
        accumulate=cfg.optim.accumulate,
        rank=rank.rank,
        world=rank.world,
    )
    loader = DataLoader(
        samples,
        batch_sampler=batches,
        num_workers=cfg.data.workers,
        worker_init_fn=worker_init,
        pin_memory=device == "cuda",
    )
    if rank.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(to_plain(cfg), indent=2))
    run_log = RunLog(out / "log.jsonl", resume_step=start) if rank.main else None
    progress = Progress(cfg.train.iters, start, cfg.data.batch, every=cfg.train.log_every, quiet=not rank.main)
    autocast: AbstractContextManager[Any] = (
        torch.autocast(device, dtype=torch.bfloat16 if cfg.optim.amp == "bf16" else torch.float16)
        if cfg.optim.amp != "none"
        else nullcontext()
    )
    last_ckpt: Path | None = previous[-1][1] if previous else None
    skipped_total = 0
    window: list[float] = []  # step losses since the last log record (the record holds their mean)

    def segment(step: int) -> dict[str, Any]:
        """This process's part of the run: steps, wall seconds and hardware (model cards report them)."""
        return {
            "from": start,
            "to": step,
            "seconds": round(time.perf_counter() - progress.t0, 1),
            "hardware": hardware(device, threads, rank.world),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        }

    def snapshot(step: int) -> Path | None:
        nonlocal last_ckpt
        if rank.main:
            modules = {"model": model.state_dict()}
            if ema is not None:
                modules["ema"] = ema.state_dict()
            optimizers = {"opt": opt.state_dict()}
            extra: dict[str, Any] = {
                "sched": sched.state_dict(),
                "scaler": scaler.state_dict(),
                "history": [*history, segment(step)],
            }
            if disc is not None and opt_d is not None and sched_d is not None:
                modules["disc"] = disc.state_dict()
                optimizers["opt_d"] = opt_d.state_dict()
                extra["sched_d"] = sched_d.state_dict()
            state = TrainState(step, to_plain(cfg), modules, optimizers, extra, capture_rng())
            last_ckpt = save_state(state, ckpt_dir, keep_last=cfg.train.keep_last)
        if rank.world > 1:
            dist.barrier()
        return last_ckpt

    step = start
    micro_batches = iter(loader)
    try:
        while step < cfg.train.iters:
            # ---- one optimizer step over `accumulate` micro-batches
            opt.zero_grad(set_to_none=True)
            loss_sum = torch.zeros((), device=device)
            parts_sum: dict[str, float] = {}
            use_gan = disc is not None and step >= gan.start
            fakes, reals = [], []
            for m in range(cfg.optim.accumulate):
                lr_img, hr_img, skipped = next(micro_batches)
                skipped_total += int(skipped.sum())
                lr_img, hr_img = lr_img.to(device, non_blocking=True), hr_img.to(device, non_blocking=True)
                sync = m == cfg.optim.accumulate - 1 or rank.world == 1
                with nullcontext() if sync else ddp.no_sync(), autocast:  # type: ignore[operator]
                    sr = ddp(lr_img)
                    loss, parts = objective(sr, hr_img, model)
                    if use_gan and disc_ddp is not None:
                        disc.requires_grad_(False)  # type: ignore[union-attr]
                        adv = losses.gan_loss(disc_ddp(sr), real=True)
                        loss, parts["gan"] = loss + gan.weight * adv, float(adv.detach())
                    scaler.scale(loss / cfg.optim.accumulate).backward()
                loss_sum += loss.detach()
                for k, v in parts.items():
                    parts_sum[k] = parts_sum.get(k, 0.0) + v / cfg.optim.accumulate
                if use_gan:
                    fakes.append(sr.detach())
                    reals.append(hr_img)

            # ---- stop before a bad update: the weights are still the last good ones
            status = torch.stack([loss_sum / cfg.optim.accumulate, (~torch.isfinite(loss_sum)).float()])
            if rank.world > 1:
                dist.all_reduce(status)
                status[0] /= rank.world
            step_loss = float(status[0])
            if status[1] > 0:
                raise TrainingDiverged(
                    f"the loss became {step_loss} at step {step + 1}; stopped without saving it. "
                    + (f"The last good checkpoint is {last_ckpt}. " if last_ckpt else "No checkpoint was written yet. ")
                    + "Lower optim.lr, keep optim.grad_clip on, or turn optim.amp off"
                )
            scaler.unscale_(opt)
            grad_norm = nn.utils.clip_grad_norm_(
                model.parameters(), cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")
            )
            if not torch.isfinite(grad_norm) and cfg.optim.amp != "fp16":
                raise TrainingDiverged(
                    f"the gradient became non-finite at step {step + 1}; stopped without saving it. "
                    + (f"The last good checkpoint is {last_ckpt}. " if last_ckpt else "")
                    + "Lower optim.lr or keep optim.grad_clip on"
                )
            scaler.step(opt)
            scaler.update()
            sched.step()

            # ---- discriminator step on this step's fakes
            if use_gan and disc is not None and disc_ddp is not None and opt_d is not None and sched_d is not None:
                disc.requires_grad_(True)
                opt_d.zero_grad(set_to_none=True)
                with autocast:
                    d_loss = losses.gan_loss(disc_ddp(torch.cat(reals)), real=True) + losses.gan_loss(
                        disc_ddp(torch.cat(fakes)), real=False
                    )
                d_loss.backward()
                opt_d.step()
                parts_sum["disc"] = float(d_loss.detach())
            if sched_d is not None:
                sched_d.step()
            if ema is not None:
                ema_update(ema, model, cfg.optim.ema, step)
            step += 1

            # ---- report, validate, save
            lr_now = float(sched.get_last_lr()[0])
            window.append(step_loss)
            progress.update(step, float(np.mean(window)), lr_now)
            if run_log is not None and (step % max(1, cfg.train.log_every) == 0 or step == cfg.train.iters):
                rate = progress.rate(step)
                run_log.write(
                    {
                        "kind": "train",
                        "step": step,
                        "loss": float(np.mean(window)),
                        "last_loss": step_loss,
                        "lr": lr_now,
                        "grad_norm": float(grad_norm),
                        "it_s": rate,
                        "samples_s": rate * cfg.data.batch,
                        "skipped": skipped_total,
                        **parts_sum,
                    }
                )
            if step % max(1, cfg.train.log_every) == 0:
                window.clear()
            last = step == cfg.train.iters
            if rank.main and val_set and ((cfg.train.val_every and step % cfg.train.val_every == 0) or last):
                record = validate(ema or model, val_set, cfg, step, out)
                assert run_log is not None
                run_log.write(record)
                plot_curves(run_log.records(), out / "curves.png", cfg.run_name)
                progress.message(
                    f"step {step}: val PSNR {record['psnr']:.2f} dB (bicubic {record['bicubic_psnr']:.2f}), "
                    f"SSIM {record['ssim']:.4f} (bicubic {record['bicubic_ssim']:.4f})"
                )
            if (cfg.train.save_every and step % cfg.train.save_every == 0) or last or step == stop_at:
                snapshot(step)
            if step == stop_at:
                break
    except KeyboardInterrupt:
        if step > start and (last_ckpt is None or not last_ckpt.name.endswith(f"{step:07d}.safetensors")):
            progress.message(f"interrupted: saving step {step} so --resume continues from there")
            snapshot(step)
        raise
    finally:
        del micro_batches  # stops the data workers

    if skipped_total and rank.main:
        progress.message(f"skipped {skipped_total} unreadable picture(s) while training (see warnings)")
    rate = progress.rate(step)
    result_release = result_onnx = None
    if step == cfg.train.iters and rank.main:
        result_release, result_onnx = release(ema or model, cfg, out)
        elapsed = time.perf_counter() - progress.t0
        progress.message(
            f"done: {step} steps, {rate:.3f} it/s, {rate * cfg.data.batch:.2f} samples/s, "
            f"wall {format_duration(elapsed)}; "
            f"release: {result_release}" + (f", {result_onnx}" if result_onnx else "")
        )
    if rank.world > 1:
        dist.barrier()
    return RunResult(step, out, last_ckpt, result_release, result_onnx, rate, rate * cfg.data.batch)


def load_initial(model: nn.Module, path: Path, *, strict: bool, log_main: bool = True) -> list[str]:
    """Load ``model.init`` into ``model``; returns the names of tensors left at their fresh weights.

    Strict: names and shapes must match exactly (else ConfigError). Not strict: only tensors
    whose name and shape match are taken; the others keep their fresh init and are logged
    (fewer than half fitting is an error: that is another variant, not another scale).
    """
    weights = initial_weights(path)
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


def initial_weights(path: Path) -> dict[str, torch.Tensor]:
    """Weights to start from: a training checkpoint's EMA (else its model), or a model file.

    A fused (shipped) model file is turned back into the training form with
    :func:`load_fused_state`: the same function, with the extra branches starting at zero.
    """
    if not path.is_file():
        raise ConfigError(f"model.init: {path} not found")
    try:
        state = load_state(path)
    except CheckpointError:
        stored = model_files.load(path)
        if not is_fused(stored):
            return stored.state_dict()
        trainable = ParagonSR(stored.cfg, variant=stored.variant)
        load_fused_state(trainable, stored.state_dict())
        return trainable.state_dict()
    return state.modules.get("ema", state.modules["model"])


@torch.no_grad()
def validate(model: nn.Module, val_set: list[ValImage], cfg: TrainConfig, step: int, out: Path) -> dict[str, Any]:
    """PSNR/SSIM on Y (border = scale) of the model and of bicubic; before/after crops as PNG."""
    scale = cfg.model.scale
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    scores: dict[str, list[float]] = {"psnr": [], "ssim": [], "bicubic_psnr": [], "bicubic_ssim": []}
    rows = []
    for i, item in enumerate(val_set):
        sr = model(item.lr.unsqueeze(0).to(device)).squeeze(0).float().cpu().clamp(0, 1)
        bicubic = F.interpolate(item.lr.unsqueeze(0), scale_factor=scale, mode="bicubic", align_corners=False)
        bicubic = bicubic.squeeze(0).clamp(0, 1)
        scores["psnr"].append(psnr_y(sr, item.hr, border=scale))
        scores["ssim"].append(ssim_y(sr, item.hr, border=scale))
        scores["bicubic_psnr"].append(psnr_y(bicubic, item.hr, border=scale))
        scores["bicubic_ssim"].append(ssim_y(bicubic, item.hr, border=scale))
        if i < cfg.train.val_crops:
            rows.append((item.name, item.lr, sr, item.hr))
    model.train(was_training)
    if rows:
        (out / "crops").mkdir(exist_ok=True)
        save_crops(rows, scale, out / "crops" / f"step_{step:07d}.png")
    return {"kind": "val", "step": step, "images": len(val_set), **{k: float(np.mean(v)) for k, v in scores.items()}}


def release(model: nn.Module, cfg: TrainConfig, out: Path) -> tuple[Path, Path | None]:
    """Write the fused release checkpoint and, if configured, its ONNX export(s)."""
    assert isinstance(model, ParagonSR)
    fused = fuse(copy.deepcopy(model).float().cpu())
    path = out / f"{cfg.run_name}.safetensors"
    model_files.save(fused, path)  # type: ignore[arg-type]
    onnx_path = None
    if cfg.export.onnx or cfg.export.fp16:
        from vsparagon.export.onnx import export_onnx

        if cfg.export.onnx:
            onnx_path = out / f"{cfg.run_name}.onnx"
            export_onnx(fused, onnx_path)  # type: ignore[arg-type]
        if cfg.export.fp16:
            export_onnx(fused, out / f"{cfg.run_name}_fp16.onnx", fp16=True)  # type: ignore[arg-type]
    return path, onnx_path


__all__ = ["RunResult", "TrainingDiverged", "train"]
