"""``paragon release``: a training state -> a shippable model with its model card.

From a run folder (its newest checkpoint) or one training-state file, this writes

* ``NAME.safetensors``: the fused model (EMA weights when the run kept an EMA);
* ``NAME.onnx`` and ``NAME_fp16.onnx``: parity-checked ONNX exports;
* ``NAME.md``: the model card: data and its licences, degradations, iterations,
  hardware and wall time (from the state's history), and the quality table
  (``paragon eval`` on the validation folders), plus the training curves PNG.

The files are what ``models/`` holds and what ``core.paragon.Upscale`` finds by
release key and scale (``paragonsr_<key>_x<scale>.onnx``, :mod:`vsparagon.catalogue.shipped`).
The fused model and ONNX files are written by :func:`vsparagon.export.release.write_release`,
the same path the end of ``paragon train`` takes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vsparagon.catalogue import ShippedName
from vsparagon.errors import CheckpointError
from vsparagon.export.release import write_release
from vsparagon.models.registry import create
from vsparagon.tools import evaluate
from vsparagon.train.config import TrainConfig, parse_config, to_plain
from vsparagon.train.report import format_duration
from vsparagon.train.run import trained_gate
from vsparagon.train.state import list_states, load_state


@dataclass(frozen=True)
class Released:
    """What :func:`release_run` wrote."""

    weights: Path
    onnx: Path
    onnx_fp16: Path
    card: Path
    step: int
    quality: dict[str, dict[str, float]]
    """Validation folder -> mean scores (``model_psnr``, ``bicubic_psnr``, ... ``model_ssim``)."""


def find_state(source: Path) -> Path:
    """The newest checkpoint of a run folder, or ``source`` itself when it is a state file."""
    if source.is_dir():
        states = list_states(source / "checkpoints") or list_states(source)
        if not states:
            raise CheckpointError(f"{source}: no training checkpoint (state_*.safetensors) in it or in checkpoints/")
        return states[-1][1]
    if not source.is_file():
        raise CheckpointError(f"{source}: no such run folder or training checkpoint")
    return source


def release_run(
    source: Path,
    out: Path,
    *,
    name: str | None = None,
    val: list[Path] | None = None,
    notes: str = "",
    threads: int = 0,
    lr_codecs: list[tuple[str, float]] | None = None,
) -> Released:
    """Release the newest state of ``source`` into ``out`` (see the module docstring).

    Args:
        source: a run folder (``paragon train --out``) or a ``state_*.safetensors`` file.
        out: destination folder (created).
        name: file stem; default the run name, e.g. ``paragonsr_tiny_x2``.
        val: folders of HR pictures for the quality table; default the run's validation sources.
        notes: Markdown appended to the card (e.g. what a quality bar still needs).
        threads: CPU threads for the evaluation (0 = all).
        lr_codecs: also score with each LR compressed by these codecs, e.g. ``[("h264", 30)]``
            (``paragon eval --lr-codec``): the table that matters for a video model.
    """
    path = find_state(source)
    state = load_state(path)
    cfg = parse_config(state.config, where=f"{path} (its stored config)")
    stem = name or cfg.run_name
    out.mkdir(parents=True, exist_ok=True)

    model = create(cfg.model.variant, cfg.model.scale, gate=trained_gate(state.config))
    model.load_state_dict(state.modules.get("ema", state.modules["model"]))
    written = write_release(model, out, stem)
    report32, report16 = written.onnx, written.onnx_fp16
    if report32 is None or report16 is None:  # both are asked for above
        raise RuntimeError("write_release skipped an ONNX file it was asked for")
    weights_path, onnx_path, fp16_path = written.weights, report32.path, report16.path

    folders = val if val is not None else [Path(s.path) for s in cfg.data.val if s.kind == "images"]
    tables, quality = [], {}
    for folder in folders:
        for lr_codec in [None, *(lr_codecs or [])]:
            results = evaluate.evaluate(
                str(onnx_path), folder, scale=cfg.model.scale, threads=threads, lr_codec=lr_codec
            )
            suffix = f" --lr-codec {lr_codec[0]}:{lr_codec[1]:g}" if lr_codec else ""
            tables.append((folder, suffix, evaluate.table(results)))
            quality[_shown(folder) + suffix] = {
                f"{m}_{k}": float(np.mean([r.scores[m][i] for r in results]))
                for m in evaluate.METHODS
                for i, k in enumerate(("psnr", "ssim"))
            }

    curves = None
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    if (run_dir / "curves.png").is_file():
        curves = out / f"{stem}_curves.png"
        shutil.copyfile(run_dir / "curves.png", curves)

    files = [(weights_path, ""), (onnx_path, f"parity vs PyTorch {report32.max_abs_error:.1e}")]
    files.append((fp16_path, f"parity vs PyTorch {report16.max_abs_error:.1e}"))
    card = out / f"{stem}.md"
    card.write_text(
        model_card(stem, cfg, state.step, state.extra, files, tables, curves, notes, source_state=path.name),
        encoding="utf-8",
    )
    (out / f"{stem}.quality.json").write_text(json.dumps({"step": state.step, "quality": quality}, indent=2) + "\n")
    return Released(weights_path, onnx_path, fp16_path, card, state.step, quality)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _attribution(cfg: TrainConfig) -> str:
    """Lines of the ATTRIBUTION.md (written by examples/train/fetch_data.py) above the data, for the data used.

    A line naming a top-level data folder (``train/``, ``video/``, ...) that no source of this
    run uses is left out; lines naming none (e.g. where validation pictures came from) stay.
    """
    lines: list[str] = []
    roots: dict[Path, set[str]] = {}
    for src in [*cfg.data.train, *cfg.data.val]:
        here = Path(src.path).resolve()
        for root in (here, *list(here.parents)[:2]):
            if (root / "ATTRIBUTION.md").is_file():
                used = roots.setdefault(root, set())
                if here != root:
                    used.add(here.relative_to(root).parts[0])
                break
    for root, used in roots.items():
        folders = {p.name for p in root.iterdir() if p.is_dir()}
        for line in (root / "ATTRIBUTION.md").read_text(encoding="utf-8").splitlines():
            named = {f for f in folders if f"{f}/" in line}
            if line.startswith("- ") and (not named or named & used):
                lines.append(line)
    return "\n".join(lines)


def _shown(path: str | Path) -> str:
    """A path as a reader can use it: relative to the current folder when inside it."""
    full = Path(path).resolve()
    try:
        return str(full.relative_to(Path.cwd()))
    except ValueError:
        return str(full)


def _describe_degradation(cfg: TrainConfig) -> str:
    deg = cfg.degradation
    rounded = " The LR is then rounded to 8-bit code values." if deg.quantize else ""
    if deg.preset == "bicubic":
        return "bicubic (antialiased) downscaling only: the fidelity preset, as in the SR literature." + rounded
    if deg.preset == "video":
        return (
            "the `video` preset: blur, resize with a random kernel, Gaussian/Poisson noise and JPEG, twice, then "
            "H.264/HEVC compression of the LR picture at a random quality (see vsparagon/train/degrade.py)." + rounded
        )
    return f"custom steps: `{json.dumps(to_plain(deg.steps))}`.{rounded}"


def _history(extra: dict[str, Any], step: int) -> tuple[list[str], float]:
    rows, total = [], 0.0
    covered = 0
    for seg in extra.get("history") or []:
        rows.append(
            f"| {seg['from']} -> {seg['to']} | {seg['hardware']} | {format_duration(seg['seconds'])} | "
            f"{seg.get('finished', '')} |"
        )
        total += float(seg["seconds"])
        covered += int(seg["to"]) - int(seg["from"])
    if covered < step:
        rows.insert(0, f"| {step - covered} steps | not recorded in the state (see the notes) | | |")
    return rows, total


def model_card(
    stem: str,
    cfg: TrainConfig,
    step: int,
    extra: dict[str, Any],
    files: list[tuple[Path, str]],
    tables: list[tuple[Path, str, str]],
    curves: Path | None,
    notes: str,
    *,
    source_state: str,
) -> str:
    """The Markdown model card."""
    d, o, lo = cfg.data, cfg.optim, cfg.loss
    history, seconds = _history(extra, step)
    # <arch>_<key>_x<scale> is what core.paragon.Upscale(variant=<key>) finds
    shipped = ShippedName.parse(stem)
    shipped_name = shipped is not None and shipped.scale == cfg.model.scale
    key = shipped.selector if shipped is not None else ""
    lines = [
        f"# {stem}",
        "",
        f"ParagonSR `{cfg.model.variant}` x{cfg.model.scale}, trained with `paragon train` "
        f"({step} of {cfg.train.iters} planned steps; released from `{source_state}` with `paragon release`).",
        "",
        "```python",
        f'clip = core.paragon.Upscale(clip, variant="{key}", scale={cfg.model.scale})'
        if shipped_name
        else f'clip = core.paragon.Upscale(clip, model="{stem}.onnx", scale={cfg.model.scale})',
        "```",
        "",
        "## Files",
        "",
        "| file | size | SHA-256 | check |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{p.name}` | {p.stat().st_size:,} B | `{_sha256(p)[:16]}...` | {note} |" for p, note in files]
    lines += ["", "## Quality", ""]
    for folder, suffix, text in tables:
        what = "bicubic downscale" + (f", then {suffix.split()[-1]} compression" if suffix else "")
        lines += [
            f"`paragon eval models/{stem}.onnx {_shown(folder)} --scale {cfg.model.scale}{suffix}` "
            f"(LR = {what}; Y PSNR / SSIM, border = scale):",
            "",
            "```",
            text,
            "```",
            "",
        ]
    if curves is not None:
        lines += [f"![training curves]({curves.name})", ""]
    lines += [
        "## Training",
        "",
        "- Data: "
        + "; ".join(
            f"{s.kind} `{_shown(s.path)}`"
            + (f" (pictures of {s.halve_above_mp:g} MP or more halved first)" if s.halve_above_mp else "")
            for s in d.train
        )
        + f". LR crops {d.crop}x{d.crop}, batch {d.batch}.",
        f"- Validation (never trained on): {', '.join(f'`{_shown(s.path)}`' for s in d.val) or 'none'}.",
        f"- Degradation: {_describe_degradation(cfg)}",
        f"- Loss: {lo.pixel}"
        + (f" + {lo.fft} x FFT" if lo.fft else "")
        + (f" + {lo.ms_ssim} x MS-SSIM" if lo.ms_ssim else "")
        + (f" + {lo.perceptual.weight} x perceptual" if lo.perceptual.weight else "")
        + (f" + {lo.gan.weight} x GAN" if lo.gan.weight else "")
        + (f" + {lo.anti_ringing} x anti-ringing" if lo.anti_ringing else "")
        + (
            f" + {lo.range_guard} x output-range guard ({lo.range_samples} generated hard patterns per batch, "
            f"range [{lo.range_limits[0]:g}, {lo.range_limits[1]:g}])"
            if lo.range_guard
            else ""
        )
        + ".",
        f"- Optimiser: AdamW lr {o.lr:g}, warmup {o.warmup}, cosine to {o.min_lr_ratio:g} x lr over {cfg.train.iters} "
        f"steps, EMA {o.ema:g}, grad clip {o.grad_clip:g}, AMP {o.amp}.",
        f"- Initial weights: `{_shown(cfg.model.init)}`." if cfg.model.init else "- Initial weights: fresh.",
        "",
        "| steps | hardware | wall time | finished (UTC) |",
        "|---|---|---|---|",
        *history,
        "",
        f"Recorded wall time: {format_duration(seconds)}." if seconds else "Wall time: see the notes.",
        "",
        "## Data and licences",
        "",
        _attribution(cfg) or "(no ATTRIBUTION.md found beside the data)",
        "",
    ]
    if notes.strip():
        lines += ["## Notes", "", notes.strip(), ""]
    return "\n".join(lines)


__all__ = ["Released", "find_state", "model_card", "release_run"]
