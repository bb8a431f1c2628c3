"""The training loop: config in, resumable checkpoints, logs, and a fused release model out.

Read :func:`train` top to bottom: :func:`~vsparagon.train.run.setup` builds the run, then
each pass of the loop is one optimizer step of the model (:func:`train_step`: micro-batch
gradients, a finite-loss check, clipping), a discriminator step once the GAN is on, the EMA
update, and now and then a validation and a checkpoint. Under ``torchrun`` each process
takes its share of every global batch (see :class:`~vsparagon.train.data.StepBatches`) and
DDP averages gradients.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from vsparagon.errors import ParagonError
from vsparagon.models.auxiliary import expert_usage
from vsparagon.train import losses
from vsparagon.train.config import TrainConfig, to_plain
from vsparagon.train.data import ValImage
from vsparagon.train.metrics import psnr_y, ssim_y
from vsparagon.train.report import Progress, RunLog, format_duration, plot_curves, plot_usage, save_crops
from vsparagon.train.run import (
    Adversary,
    Dist,
    Objective,
    Run,
    hardware,
    initial_weights,
    load_initial,
    lr_factor,
    pick_device,
    setup,
    setup_distributed,
    snapshot,
    step_loader,
)

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""One micro-batch: LR ``(B, C, h, w)``, HR ``(B, C, H, W)``, and which pictures were unreadable ``(B,)``."""


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


def train(cfg: TrainConfig, out: Path, *, resume: bool = False, stop_at: int | None = None) -> RunResult:
    """Run (or continue) the training described by ``cfg``, writing into ``out``.

    Args:
        cfg: the checked config.
        out: run folder: checkpoints/, log.jsonl, curves.png, crops/, experts.png (models with a mixture of
            experts), the release files.
        resume: continue from the newest checkpoint in ``out/checkpoints``.
        stop_at: stop (after saving) once this many steps are done, as an interruption would.

    Raises:
        ConfigError: bad data or settings, found before the first step.
        TrainingDiverged: a non-finite loss; the last good checkpoint is kept.
        CheckpointError: a checkpoint could not be written or read.
    """
    run = setup(cfg, out, resume=resume)
    loader = step_loader(run)
    report = Report.begin(run)
    step = run.start  # steps done
    micro_batches = (batch for batch in loader)  # a generator: closing it stops the data workers
    try:
        while step < cfg.train.iters:
            gan = run.gan if run.gan is not None and run.gan.active(step) else None
            stats = train_step(run, micro_batches, step, gan)
            if gan is not None:
                stats.parts["disc"] = discriminator_step(gan, stats.reals, stats.fakes, run.autocast)
            if run.gan is not None:
                run.gan.sched.step()  # from step 0, as the model's: loss.gan.start does not delay it
            if run.ema is not None:
                ema_update(run.ema, run.model, cfg.optim.ema, step)
            step += 1

            report.step(run, step, stats)
            last = step == cfg.train.iters
            if run.job.main and run.val_set and (every(step, cfg.train.val_every) or last):
                report.validation(run, step)
            if every(step, cfg.train.save_every) or last or step == stop_at:
                snapshot(run, step, report.progress.t0)
            if step == stop_at:
                break
    except KeyboardInterrupt:
        saved = run.last_ckpt is not None and run.last_ckpt.name.endswith(f"{step:07d}.safetensors")
        if step > run.start and not saved:
            report.progress.message(f"interrupted: saving step {step} so --resume continues from there")
            snapshot(run, step, report.progress.t0)
        raise
    finally:
        micro_batches.close()  # now, even if an exception's traceback still references the generator
    return finish(run, step, report)


@dataclass
class StepStats:
    """What one optimizer step of the model reports."""

    loss: float
    """The loss, averaged over micro-batches and processes."""
    grad_norm: torch.Tensor
    """The gradient norm before clipping."""
    parts: dict[str, float]
    """Each loss term (this process's), averaged over micro-batches; the discriminator step adds ``disc``."""
    skipped: int
    """Unreadable pictures replaced in this step's micro-batches."""
    reals: list[torch.Tensor] = field(default_factory=list)
    """This step's HR micro-batches, for the discriminator (empty while the GAN is off)."""
    fakes: list[torch.Tensor] = field(default_factory=list)
    """This step's SR micro-batches, detached, for the discriminator (empty while the GAN is off)."""


def train_step(run: Run, micro_batches: Iterator[Batch], step: int, gan: Adversary | None) -> StepStats:
    """One optimizer step of the model over ``optim.accumulate`` micro-batches.

    Args:
        run: the run.
        micro_batches: this process's micro-batches, in order.
        step: steps done before this one.
        gan: the discriminator to train against, or ``None`` (no GAN, or before ``loss.gan.start``).

    Raises:
        TrainingDiverged: the loss or the gradient is not finite; nothing was updated.
    """
    accumulate = run.cfg.optim.accumulate
    run.opt.zero_grad(set_to_none=True)
    loss_sum = torch.zeros((), device=run.device)
    parts_sum: dict[str, float] = {}
    skipped = 0
    reals: list[torch.Tensor] = []
    fakes: list[torch.Tensor] = []
    for m in range(accumulate):
        lr_img, hr_img, unreadable = next(micro_batches)
        skipped += int(unreadable.sum())
        lr_img, hr_img = lr_img.to(run.device, non_blocking=True), hr_img.to(run.device, non_blocking=True)
        sync = m == accumulate - 1 or run.job.world == 1  # DDP averages gradients once, on the last micro-batch
        guard = run.cfg.loss.range_guard > 0
        if guard:  # hard patterns ride in the same forward pass (one DDP forward per backward)
            lr_img = torch.cat([lr_img, guard_inputs(run, lr_img, step, m)])
        with nullcontext() if sync else run.ddp.no_sync(), run.autocast:  # type: ignore[operator]
            sr = run.ddp(lr_img)
            if guard:
                sr, guarded = sr[: len(hr_img)], sr[len(hr_img) :]
            loss, parts = run.objective(sr, hr_img, run.model)
            if guard:
                term = losses.out_of_range(guarded, *run.cfg.loss.range_limits)
                loss, parts["range"] = loss + run.cfg.loss.range_guard * term, float(term.detach())
            if gan is not None:
                gan.disc.requires_grad_(False)  # the model's loss must not leave gradients in the discriminator
                adv = losses.gan_loss(gan.ddp(sr), real=True)
                loss, parts["gan"] = loss + gan.weight * adv, float(adv.detach())
            run.scaler.scale(loss / accumulate).backward()
        loss_sum += loss.detach()
        for k, v in parts.items():
            parts_sum[k] = parts_sum.get(k, 0.0) + v / accumulate
        if gan is not None:
            fakes.append(sr.detach())
            reals.append(hr_img)
    step_loss = finite_loss(run, loss_sum, step)
    grad_norm = update_weights(run, step)
    return StepStats(step_loss, grad_norm, parts_sum, skipped, reals, fakes)


def guard_inputs(run: Run, lr_img: torch.Tensor, step: int, micro: int) -> torch.Tensor:
    """The ``loss.range_guard`` patterns of one micro-batch, shaped like ``lr_img``'s samples.

    Drawn from a generator seeded by the run's seed, the step, the micro-batch and the process,
    so a resumed run draws what an uninterrupted one would.
    """
    seed = ((run.cfg.train.seed * 1_000_003 + step) * 64 + micro) * 4096 + run.job.rank
    gen = torch.Generator().manual_seed(seed)
    _, channels, height, width = lr_img.shape
    patterns = losses.hard_patterns(run.cfg.loss.range_samples, channels, height, width, gen)
    return patterns.to(device=lr_img.device, dtype=lr_img.dtype)


def finite_loss(run: Run, loss_sum: torch.Tensor, step: int) -> float:
    """The step's loss, averaged over micro-batches and processes; raises if any process's is not finite.

    Raising here stops before a bad update: the weights are still the last good ones.
    """
    status = torch.stack([loss_sum / run.cfg.optim.accumulate, (~torch.isfinite(loss_sum)).float()])
    if run.job.world > 1:
        dist.all_reduce(status)
        status[0] /= run.job.world
    step_loss = float(status[0])
    if status[1] > 0:
        raise TrainingDiverged(
            f"the loss became {step_loss} at step {step + 1}; stopped without saving it. "
            + (f"The last good checkpoint is {run.last_ckpt}. " if run.last_ckpt else "No checkpoint was written yet. ")
            + "Lower optim.lr, keep optim.grad_clip on, or turn optim.amp off"
        )
    return step_loss


def update_weights(run: Run, step: int) -> torch.Tensor:
    """Clip and apply the accumulated gradients, then advance the schedule; returns the norm before clipping."""
    optim = run.cfg.optim
    run.scaler.unscale_(run.opt)
    grad_norm = nn.utils.clip_grad_norm_(
        run.model.parameters(), optim.grad_clip if optim.grad_clip > 0 else float("inf")
    )
    if not torch.isfinite(grad_norm) and optim.amp != "fp16":  # with fp16 the scaler skips such steps itself
        raise TrainingDiverged(
            f"the gradient became non-finite at step {step + 1}; stopped without saving it. "
            + (f"The last good checkpoint is {run.last_ckpt}. " if run.last_ckpt else "")
            + "Lower optim.lr or keep optim.grad_clip on"
        )
    run.scaler.step(run.opt)
    run.scaler.update()
    run.sched.step()
    return grad_norm


def discriminator_step(
    gan: Adversary, reals: list[torch.Tensor], fakes: list[torch.Tensor], autocast: AbstractContextManager[Any]
) -> float:
    """One optimizer step of the discriminator: this step's HR batches are real, its SR batches fake.

    Returns its loss.
    """
    gan.disc.requires_grad_(True)
    gan.opt.zero_grad(set_to_none=True)
    with autocast:
        d_loss = losses.gan_loss(gan.ddp(torch.cat(reals)), real=True) + losses.gan_loss(
            gan.ddp(torch.cat(fakes)), real=False
        )
    d_loss.backward()
    gan.opt.step()
    return float(d_loss.detach())


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    """``ema = d * ema + (1 - d) * model``, with ``d`` ramped up over the first steps."""
    d = min(decay, (1 + step) / (10 + step))
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p.detach(), 1 - d)


def every(step: int, interval: int) -> bool:
    """Whether ``step`` is a multiple of ``interval`` (an interval of 0: never)."""
    return interval > 0 and step % interval == 0


@dataclass
class Report:
    """What a run shows: a progress line on stderr and, on rank 0, log.jsonl, curves.png and crops/."""

    progress: Progress
    log: RunLog | None
    """Rank 0 only."""
    window: list[float] = field(default_factory=list)
    """Step losses since the last log record (the record holds their mean)."""
    skipped: int = 0
    """Unreadable pictures replaced so far by this process."""

    @classmethod
    def begin(cls, run: Run) -> Report:
        """Write config.json and open log.jsonl (rank 0); start the progress line."""
        cfg, out = run.cfg, run.out
        if run.job.main:
            out.mkdir(parents=True, exist_ok=True)
            (out / "config.json").write_text(json.dumps(to_plain(cfg), indent=2))
        run_log = RunLog(out / "log.jsonl", resume_step=run.start) if run.job.main else None
        progress = Progress(
            cfg.train.iters, run.start, cfg.data.batch, every=cfg.train.log_every, quiet=not run.job.main
        )
        return cls(progress, run_log)

    def step(self, run: Run, step: int, stats: StepStats) -> None:
        """Update the progress line; every ``train.log_every`` steps, and at the end, append a log record."""
        cfg = run.cfg
        interval = max(1, cfg.train.log_every)
        lr_now = float(run.sched.get_last_lr()[0])
        self.skipped += stats.skipped
        self.window.append(stats.loss)
        self.progress.update(step, float(np.mean(self.window)), lr_now)
        if self.log is not None and (step % interval == 0 or step == cfg.train.iters):
            rate = self.progress.rate(step)
            self.log.write(
                {
                    "kind": "train",
                    "step": step,
                    "loss": float(np.mean(self.window)),
                    "last_loss": stats.loss,
                    "lr": lr_now,
                    "grad_norm": float(stats.grad_norm),
                    "it_s": rate,
                    "samples_s": rate * cfg.data.batch,
                    "skipped": self.skipped,
                    **stats.parts,
                    **({"experts": usage} if (usage := expert_usage(run.model)) else {}),
                }
            )
        if step % interval == 0:
            self.window.clear()

    def validation(self, run: Run, step: int) -> None:
        """Score the EMA (else the model) on the validation pictures; log, plot and print the scores."""
        record = validate(run.ema or run.model, run.val_set, run.cfg, step, run.out)
        assert self.log is not None  # only rank 0 validates
        self.log.write(record)
        records = self.log.records()
        plot_curves(records, run.out / "curves.png", run.cfg.run_name)
        plot_usage(records, run.out / "experts.png", run.cfg.run_name)
        self.progress.message(
            f"step {step}: val PSNR {record['psnr']:.2f} dB (bicubic {record['bicubic_psnr']:.2f}), "
            f"SSIM {record['ssim']:.4f} (bicubic {record['bicubic_ssim']:.4f})"
        )


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


def finish(run: Run, step: int, report: Report) -> RunResult:
    """Close the run: when all ``train.iters`` steps are done, rank 0 writes the release files."""
    cfg = run.cfg
    if report.skipped and run.job.main:
        report.progress.message(f"skipped {report.skipped} unreadable picture(s) while training (see warnings)")
    rate = report.progress.rate(step)
    release = onnx = None
    if step == cfg.train.iters and run.job.main:
        from vsparagon.export.release import write_release  # the ONNX exporter, only when a run ends

        if report.log is not None:  # the whole run's expert utilisation (models with a mixture of experts)
            plot_usage(report.log.records(), run.out / "experts.png", cfg.run_name)

        files = write_release(run.ema or run.model, run.out, cfg.run_name, onnx=cfg.export.onnx, fp16=cfg.export.fp16)
        release, onnx = files.weights, files.onnx.path if files.onnx else None
        elapsed = time.perf_counter() - report.progress.t0
        report.progress.message(
            f"done: {step} steps, {rate:.3f} it/s, {rate * cfg.data.batch:.2f} samples/s, "
            f"wall {format_duration(elapsed)}; "
            f"release: {release}" + (f", {onnx}" if onnx else "")
        )
    if run.job.world > 1:
        dist.barrier()
    return RunResult(step, run.out, run.last_ckpt, release, onnx, rate, rate * cfg.data.batch)


__all__ = [
    "Dist",
    "Objective",
    "RunResult",
    "TrainingDiverged",
    "ema_update",
    "hardware",
    "initial_weights",
    "load_initial",
    "lr_factor",
    "pick_device",
    "setup_distributed",
    "train",
    "validate",
]
