"""The typed training configuration, loaded from YAML.

Every field carries its documentation (``paragon train --explain`` prints them);
unknown keys and wrong types are rejected with the key path, the bad value and
what is accepted. Sections mirror the YAML file::

    model:        {variant: tiny, scale: 2}
    data:         {train: [...], val: [...], crop: 64, batch: 16, ...}
    degradation:  {preset: bicubic}            # or video, or custom steps
    loss:         {pixel: charbonnier, ...}
    optim:        {lr: 5e-4, warmup: 200, ...}
    train:        {iters: 10000, val_every: 500, ...}
    export:       {onnx: true, fp16: true}
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from vsparagon.errors import ConfigError

_T = typing.TypeVar("_T")


def doc(default: Any, text: str) -> Any:
    """A dataclass field with a default and its documentation."""
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": text})
    if dataclasses.is_dataclass(default):
        return field(default_factory=lambda: dataclasses.replace(default), metadata={"doc": text})  # type: ignore[type-var]
    return field(default=default, metadata={"doc": text})


Range = tuple[float, float]
Option = bool | int | float | str
"""A value of ``model.options``: one field of an architecture's config."""
Kernel = Literal["bicubic", "bilinear", "area", "lanczos", "nearest"]


# --------------------------------------------------------------------------- model
@dataclass(frozen=True, kw_only=True)
class ModelSection:
    """What to train."""

    variant: str = doc(
        "tiny",
        "Variant: ParagonSR's tiny, xs, s, m, l or xl; or a research network: ehrsr_tiny, ehrsr_base, "
        "hermes_tiny, hermes_base.",
    )
    scale: int = doc(2, "Upscaling factor: 1-4 for ParagonSR, 2 or 4 for EHR-SR and HERMES.")
    gate: Literal["rmsnorm", "softcap", "sigmoid", "gelu"] = doc(
        "rmsnorm",
        "ParagonSR only. Block design (the FFN): rmsnorm, softcap or sigmoid are bounded (linear in the input, "
        "finite in fp16; docs/block-design.md compares them); gelu is the unbounded design of format-1 models, "
        "kept to continue them.",
    )
    options: dict[str, Option] = doc(
        {},
        "Fields of the architecture's config that override the variant's, e.g. {use_ssm: false} for an EHR-SR "
        "ablation (the error for an unknown one lists the fields). ParagonSR's block design is model.gate.",
    )
    init: str | None = doc(None, "Training-form checkpoint (.safetensors) to start from instead of fresh weights.")
    init_strict: bool = doc(
        True,
        "false: tensors of init whose name or shape differ from this model (e.g. the upsampler when a x4 model "
        "starts from a x2 one) keep their fresh weights, and the log names them; true: any difference is an error.",
    )


# --------------------------------------------------------------------------- data
@dataclass(frozen=True, kw_only=True)
class Source:
    """One source of HR images (or LR/HR pairs)."""

    kind: Literal["images", "video", "paired", "synthetic"] = doc(
        "images",
        "images: a folder of HR images (searched recursively); video: a video file or a folder of them "
        "(frames sampled through PyAV); paired: matching LR/HR folders (no degradation applied); "
        "synthetic: generated pictures (for smoke tests).",
    )
    path: str = doc("", "Folder or file (for paired: the HR folder). Relative paths are relative to the config file.")
    lr_path: str = doc("", "paired only: the LR folder; files are matched to HR files by name without extension.")
    weight: float = doc(1.0, "Relative chance of drawing a training sample from this source.")
    frames: int = doc(64, "video only: frames sampled evenly from each file.")
    count: int = doc(64, "synthetic only: number of distinct generated pictures.")
    size: int = doc(256, "synthetic only: side of the generated pictures, in pixels.")
    halve_above_mp: float = doc(
        0.0, "Halve (area downscale) pictures of at least this many megapixels before cropping; 0 = never."
    )


@dataclass(frozen=True, kw_only=True)
class DataSection:
    """Where training and validation pictures come from and how they are batched."""

    train: list[Source] = doc([], "Training sources (at least one).")
    val: list[Source] = doc([], "Validation sources (HR pictures; LR made by bicubic downscaling). Empty = none.")
    crop: int = doc(64, "LR crop side in pixels; the HR crop is crop * scale.")
    batch: int = doc(16, "Global batch per optimizer step (split across processes and accumulation steps).")
    workers: int = doc(2, "DataLoader worker processes per training process (0 = load in the main process).")
    flip: bool = doc(True, "Random horizontal and vertical flips.")
    rot90: bool = doc(True, "Random 90-degree rotations.")
    val_max_side: int = doc(512, "Validation HR pictures are centre-cropped to at most this side (bounds time).")
    cache_mb: int = doc(2048, "Decoded pictures kept in memory per worker, in MiB (large files are decoded once).")


# --------------------------------------------------------------------------- degradation
@dataclass(frozen=True, kw_only=True)
class ResizeStep:
    """Resize by a random factor (the last resize of the pipeline always lands on the LR size)."""

    type: Literal["resize"] = "resize"
    prob: float = doc(1.0, "Chance this step runs.")
    kernels: list[Kernel] = doc(["bicubic"], "Kernels to draw from: bicubic, bilinear, area, lanczos, nearest.")
    factor: Range = doc((1.0, 1.0), "Range of the size factor relative to the current size (<1 shrinks).")


@dataclass(frozen=True, kw_only=True)
class BlurStep:
    """Gaussian blur, isotropic or anisotropic (rotated ellipse)."""

    type: Literal["blur"] = "blur"
    prob: float = doc(1.0, "Chance this step runs.")
    sigma: Range = doc((0.2, 2.0), "Range of the standard deviation in pixels (each axis for anisotropic).")
    anisotropic: float = doc(0.5, "Chance the kernel is anisotropic (two sigmas, random rotation).")


@dataclass(frozen=True, kw_only=True)
class NoiseStep:
    """Additive Gaussian or Poisson (shot) noise."""

    type: Literal["noise"] = "noise"
    prob: float = doc(1.0, "Chance this step runs.")
    gaussian: Range = doc((1.0, 15.0), "Range of the Gaussian sigma in 8-bit levels.")
    poisson: Range = doc((0.05, 2.0), "Range of the Poisson strength (photon scale 255 / strength).")
    poisson_prob: float = doc(0.4, "Chance the noise is Poisson rather than Gaussian.")
    gray: float = doc(0.4, "Chance the noise is the same on all channels (luma noise).")


@dataclass(frozen=True, kw_only=True)
class JpegStep:
    """JPEG compression at a random quality."""

    type: Literal["jpeg"] = "jpeg"
    prob: float = doc(1.0, "Chance this step runs.")
    quality: Range = doc((30.0, 95.0), "Range of the JPEG quality (1-100).")


@dataclass(frozen=True, kw_only=True)
class CodecStep:
    """Real video-codec compression (H.264 / HEVC through PyAV's libx264 / libx265)."""

    type: Literal["codec"] = "codec"
    prob: float = doc(1.0, "Chance this step runs.")
    codecs: list[Literal["h264", "hevc"]] = doc(["h264", "hevc"], "Codecs to draw from.")
    crf: Range = doc((18.0, 35.0), "Range of the constant rate factor (higher = stronger compression).")
    preset: str = doc("veryfast", "Encoder preset.")
    frames: int = doc(3, "Frames encoded (small random motion between them); the last, inter-coded one is kept.")


Step = Union[ResizeStep, BlurStep, NoiseStep, JpegStep, CodecStep]  # noqa: UP007 - read by the loader


@dataclass(frozen=True, kw_only=True)
class DegradationSection:
    """How LR crops are made from HR crops, on the fly."""

    preset: Literal["bicubic", "video", "custom"] = doc(
        "bicubic",
        "bicubic: one bicubic downscale (fidelity models); video: a second-order blur/resize/noise/JPEG "
        "pipeline ending in H.264/HEVC compression (real-world video); custom: the steps below.",
    )
    steps: list[Step] = doc(
        [], "custom only: the pipeline, applied in order (types: resize, blur, noise, jpeg, codec)."
    )
    final_kernels: list[Kernel] = doc(
        ["bicubic"], "Kernels for the last resize to the LR size (the video preset draws from several)."
    )
    quantize: bool = doc(
        False,
        "Round each LR crop to 8-bit code values at the end, as an 8-bit LR file holds it (and as "
        "paragon eval feeds its models); false keeps the exact float LR of older runs.",
    )


# --------------------------------------------------------------------------- losses
@dataclass(frozen=True, kw_only=True)
class PerceptualSection:
    """VGG-19 feature loss, from a weights file the user supplies (never downloaded)."""

    weight: float = doc(0.0, "Loss weight; 0 = off.")
    weights_path: str = doc(
        "", "Local VGG-19 state dict (torchvision key names 'features.N.weight'), .pth or .safetensors."
    )
    layers: dict[str, float] = doc(
        {"conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}, "VGG layers and their weights."
    )


@dataclass(frozen=True, kw_only=True)
class GanSection:
    """Optional adversarial stage."""

    weight: float = doc(0.0, "Generator adversarial loss weight; 0 = no GAN.")
    start: int = doc(0, "Iteration at which the adversarial loss switches on (pretrain with pixel losses first).")
    discriminator: Literal["patch", "unet"] = doc("unet", "patch: PatchGAN; unet: U-Net discriminator (per pixel).")
    channels: int = doc(64, "Base width of the discriminator.")
    lr: float = doc(1e-4, "Discriminator learning rate (AdamW, same schedule shape).")


@dataclass(frozen=True, kw_only=True)
class LossSection:
    """The training objective: a weighted sum."""

    pixel: Literal["l1", "charbonnier", "mse"] = doc(
        "charbonnier", "Pixel loss (mse: mean squared error, what PSNR measures; for a final fine-tune)."
    )
    pixel_weight: float = doc(1.0, "Pixel loss weight.")
    ms_ssim: float = doc(0.0, "MS-SSIM loss weight (1 - MS-SSIM); 0 = off.")
    fft: float = doc(0.0, "Frequency loss weight (L1 between 2-D spectra); 0 = off.")
    perceptual: PerceptualSection = doc(
        PerceptualSection(), "Perceptual (VGG-19 feature) loss from a local weights file."
    )
    gan: GanSection = doc(GanSection(), "Optional adversarial stage with a patch or U-Net discriminator.")
    aux_weight: float = doc(
        1.0,
        "Multiplies the auxiliary losses a model's blocks record (mixture-of-experts load balancing and router "
        "entropy, each already weighted inside its block; each is logged as aux_<name>); 0 = ignore them.",
    )
    anti_ringing: float = doc(
        0.0,
        "Anti-ringing loss weight (HERMES's: penalises overshoot beyond the HR picture's local extrema, the halos "
        "of sharpened edges); 0 = off. Any architecture may use it.",
    )
    range_guard: float = doc(
        0.0,
        "Weight of the output-range guard: each micro-batch also runs loss.range_samples generated hard LR "
        "patterns (binary and uniform noise, heavy grain, 1-2 px checkerboards and lines, flat fields, each at a "
        "random contrast) and adds the mean squared amount by which their output leaves loss.range_limits; "
        "0 = off. It teaches the model to stay bounded on content natural pictures rarely hold (the stress "
        "patterns of models/README.md).",
    )
    range_samples: int = doc(2, "Generated patterns per micro-batch for loss.range_guard, at the LR crop size.")
    range_limits: Range = doc((-0.5, 1.5), "Output range the guard allows; only the excess beyond it is penalised.")


# --------------------------------------------------------------------------- optimisation
@dataclass(frozen=True, kw_only=True)
class OptimSection:
    """AdamW with linear warmup and cosine decay."""

    lr: float = doc(5e-4, "Peak learning rate.")
    betas: Range = doc((0.9, 0.99), "AdamW betas.")
    weight_decay: float = doc(0.0, "AdamW weight decay.")
    warmup: int = doc(100, "Linear warmup iterations.")
    min_lr_ratio: float = doc(0.01, "Final learning rate as a share of lr (cosine floor).")
    ema: float = doc(0.999, "EMA decay of the weights used for validation and release; 0 = no EMA.")
    amp: Literal["none", "bf16", "fp16"] = doc("none", "Mixed precision: bf16 (CPU or CUDA) or fp16 (CUDA only).")
    grad_clip: float = doc(1.0, "Clip the gradient norm to this; 0 = no clipping.")
    accumulate: int = doc(1, "Micro-batches per optimizer step (the batch is split into this many).")


@dataclass(frozen=True, kw_only=True)
class TrainSection:
    """The loop."""

    iters: int = doc(10000, "Optimizer steps.")
    seed: int = doc(0, "Seed of weights, data sampling and degradations (runs are reproducible).")
    device: Literal["auto", "cpu", "cuda"] = doc("auto", "auto: CUDA when available, else CPU.")
    threads: int = doc(0, "CPU threads per process for PyTorch; 0 = all cores divided among processes.")
    val_every: int = doc(500, "Validate (rank 0) every this many steps and at the end; 0 = only at the end.")
    save_every: int = doc(500, "Write a resumable checkpoint every this many steps and at the end.")
    keep_last: int = doc(3, "Resumable checkpoints kept (older ones are deleted).")
    log_every: int = doc(10, "Log loss and speed every this many steps.")
    val_crops: int = doc(2, "Before/after crops written per validation, as PNG.")


@dataclass(frozen=True, kw_only=True)
class ExportSection:
    """What is written when training ends."""

    onnx: bool = doc(True, "Export the fused release model to ONNX (fp32).")
    fp16: bool = doc(False, "Also export an fp16 ONNX.")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """A whole training run."""

    name: str = doc("", "Run name; default: paragonsr_<variant>_x<scale>.")
    model: ModelSection = doc(ModelSection(), "What to train: variant, scale, optional starting weights.")
    data: DataSection = doc(DataSection(), "Training and validation sources, crops, batching and workers.")
    degradation: DegradationSection = doc(
        DegradationSection(), "How LR crops are made from HR crops (preset or custom pipeline)."
    )
    loss: LossSection = doc(LossSection(), "The weighted sum of losses that is minimised.")
    optim: OptimSection = doc(OptimSection(), "Optimizer, schedule, EMA, mixed precision, clipping, accumulation.")
    train: TrainSection = doc(TrainSection(), "Length, seed, device, and how often to validate, save and log.")
    export: ExportSection = doc(ExportSection(), "What is written when the run finishes (fused checkpoint, ONNX).")

    @property
    def run_name(self) -> str:
        """``name`` or ``paragonsr_<variant>_x<scale>``."""
        from vsparagon.catalogue import ShippedName

        return self.name or ShippedName.of(self.model.variant, self.model.scale).stem


# --------------------------------------------------------------------------- loading
def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML config, check it strictly and resolve relative data paths.

    Raises:
        ConfigError: naming the file, the key path, the bad value and what is accepted.
    """
    import yaml

    source = Path(path)
    if not source.is_file():
        raise ConfigError(f"{source}: config file not found")
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConfigError(f"{source}: not valid YAML ({first})") from None
    raw = {} if raw is None else raw
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value)
    cfg = parse_config(raw, where=str(source))
    return _resolve_paths(cfg, source.parent)


def parse_config(raw: object, *, where: str = "config") -> TrainConfig:
    """Build a :class:`TrainConfig` from plain data (e.g. parsed YAML), strictly."""
    cfg = _convert(raw, TrainConfig, where)
    validate(cfg, where)
    return cfg


def to_plain(cfg: object) -> Any:
    """The config as plain JSON-able data (round-trips through :func:`parse_config`)."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, list | tuple):
        return [to_plain(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_plain(v) for k, v in cfg.items()}
    return cfg


def explain(cls: type = TrainConfig, prefix: str = "") -> list[str]:
    """One line per field: dotted key, default and documentation."""
    lines = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            lines.append(f"{key}: {f.metadata.get('doc', '')}")
            lines.extend(explain(hint, key + "."))  # type: ignore[arg-type]
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]
        lines.append(f"{key} (default {to_plain(default)!r}): {f.metadata.get('doc', '')}")
        if hint in (list[Source],):
            lines.extend(explain(Source, key + "[]."))
        if hint == list[Step]:
            for step in typing.get_args(Step):
                lines.extend(explain(step, f"{key}[type={step.__name__.removesuffix('Step').lower()}]."))
    return lines


def _set_dotted(raw: dict[str, Any], dotted: str, value: object) -> None:
    node = raw
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: {part} is not a section")
    node[last] = value


def _convert(value: object, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping (section), got {value!r}")
        hints = typing.get_type_hints(hint)
        known = {f.name for f in dataclasses.fields(hint) if f.init}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(known)}")
        return hint(**{k: _convert(v, hints[k], f"{where}.{k}") for k, v in value.items()})  # type: ignore[operator]
    if hint == Option:
        if not isinstance(value, bool | int | float | str):
            raise ConfigError(f"{where}: expected a number, true/false or a string, got {value!r}")
        return value
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        steps = [o for o in options if dataclasses.is_dataclass(o)]
        if steps:
            return _convert_step(value, steps, where)
        (inner,) = [o for o in options if o is not type(None)]
        return _convert(value, inner, where)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ConfigError(f"{where}: {value!r} is not one of {list(choices)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (inner,) = typing.get_args(hint)
        return [_convert(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        inner_types = typing.get_args(hint)
        if not isinstance(value, list | tuple) or len(value) != len(inner_types):
            raise ConfigError(f"{where}: expected a list of {len(inner_types)} numbers like [lo, hi], got {value!r}")
        return tuple(_convert(v, t, f"{where}[{i}]") for i, (v, t) in enumerate(zip(value, inner_types, strict=True)))
    if origin is dict:
        key_type, value_type = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {_convert(k, key_type, where): _convert(v, value_type, f"{where}.{k}") for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML reads 5e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {hint!r}")  # a bug in this module, not user input


def _convert_step(value: object, steps: list[Any], where: str) -> Any:
    names = {typing.get_args(typing.get_type_hints(s)["type"])[0]: s for s in steps}
    if not isinstance(value, dict) or value.get("type") not in names:
        got = value.get("type") if isinstance(value, dict) else value
        raise ConfigError(f"{where}: each step needs a type, one of {sorted(names)}; got {got!r}")
    return _convert(value, names[value["type"]], where)


def _check(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{where}: {message}")


def validate(cfg: TrainConfig, where: str) -> None:
    """Checks that cross fields or need ranges (types are already checked)."""
    _validate_model(cfg.model, f"{where}.model")
    data, optim, loop = cfg.data, cfg.optim, cfg.train
    _check(bool(data.train), f"{where}.data.train", "no training sources; add at least one (kind: images, path: DIR)")
    for i, src in enumerate([*data.train, *data.val]):
        at = f"{where}.data.{'train' if i < len(data.train) else 'val'}"
        _check(src.kind == "synthetic" or bool(src.path), at, f"source of kind {src.kind} needs a path")
        _check(src.kind != "paired" or bool(src.lr_path), at, "a paired source needs lr_path (the LR folder)")
        _check(src.weight > 0, at, f"weight must be > 0, got {src.weight}")
        _check(src.frames >= 1 and src.count >= 1 and src.size >= 8, at, "frames, count >= 1 and size >= 8")
    _check(data.crop >= 8, f"{where}.data.crop", f"must be >= 8, got {data.crop}")
    _check(data.batch >= 1 and data.workers >= 0, f"{where}.data", "batch >= 1 and workers >= 0")
    _check(optim.accumulate >= 1, f"{where}.optim.accumulate", "must be >= 1")
    _check(
        data.batch % optim.accumulate == 0,
        f"{where}.data.batch",
        f"{data.batch} does not split into optim.accumulate={optim.accumulate} equal micro-batches",
    )
    _check(optim.lr > 0 and 0 <= optim.ema < 1, f"{where}.optim", "lr > 0 and 0 <= ema < 1")
    _check(optim.warmup >= 0 and 0 <= optim.min_lr_ratio <= 1, f"{where}.optim", "warmup >= 0, 0 <= min_lr_ratio <= 1")
    _check(loop.iters >= 1 and loop.keep_last >= 1, f"{where}.train", "iters >= 1 and keep_last >= 1")
    _check(min(loop.val_every, loop.save_every, loop.log_every) >= 0, f"{where}.train", "intervals must be >= 0")
    for i, step in enumerate(cfg.degradation.steps):
        at = f"{where}.degradation.steps[{i}]"
        _check(0 <= step.prob <= 1, at, f"prob must be in [0, 1], got {step.prob}")
        for name in ("factor", "sigma", "gaussian", "poisson", "quality", "crf"):
            lo_hi = getattr(step, name, None)
            if lo_hi is not None:
                _check(0 <= lo_hi[0] <= lo_hi[1], at, f"{name} must be [lo, hi] with 0 <= lo <= hi, got {list(lo_hi)}")
        _check(not isinstance(step, ResizeStep) or bool(step.kernels), at, "kernels must not be empty")
        _check(not isinstance(step, CodecStep) or (bool(step.codecs) and step.frames >= 1), at, "codecs, frames >= 1")
    _check(
        cfg.degradation.preset == "custom" or not cfg.degradation.steps,
        f"{where}.degradation.steps",
        f"steps are only read with preset: custom (preset is {cfg.degradation.preset})",
    )
    _check(bool(cfg.degradation.final_kernels), f"{where}.degradation.final_kernels", "must not be empty")
    lo, hi = cfg.loss.range_limits
    _check(
        cfg.loss.range_guard >= 0 and cfg.loss.range_samples >= 1 and lo < hi,
        f"{where}.loss.range_guard",
        f"range_guard >= 0, range_samples >= 1 and range_limits [lo, hi] with lo < hi, got {cfg.loss.range_guard}, "
        f"{cfg.loss.range_samples}, {list(cfg.loss.range_limits)}",
    )
    gan = cfg.loss.gan
    _check(gan.weight >= 0 and gan.start >= 0, f"{where}.loss.gan", "weight and start must be >= 0")
    per = cfg.loss.perceptual
    _check(
        per.weight == 0 or bool(per.weights_path),
        f"{where}.loss.perceptual.weights_path",
        "perceptual weight > 0 needs weights_path: a local VGG-19 weights file (nothing is downloaded)",
    )


def _validate_model(model: ModelSection, where: str) -> None:
    """The variant, a scale its architecture takes, the gate only for ParagonSR, options its config has."""
    from vsparagon.catalogue import canonical_variant, check_scale
    from vsparagon.catalogue.table import DEFAULT_ARCH, architecture_of

    try:
        arch = architecture_of(model.variant)
        check_scale(model.scale, arch.name)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    _check(
        arch.name == DEFAULT_ARCH or model.gate == "rmsnorm",
        f"{where}.gate",
        f"{model.gate!r}: the gate is a ParagonSR setting, {model.variant} has none; remove model.gate",
    )
    _check(
        "gate" not in model.options and "scale" not in model.options,
        f"{where}.options",
        "set the gate with model.gate and the scale with model.scale, not in options",
    )
    if model.options:  # checked against the architecture's config fields (needs the models, so torch)
        from vsparagon.models.registry import ENTRIES, build_config

        values = {**arch.variants[canonical_variant(model.variant)], **model.options}
        try:
            build_config(ENTRIES[arch.name], {**values, "scale": model.scale}, source=f"{where}.options")
        except ConfigError as exc:
            raise ConfigError(str(exc)) from None


def _resolve_paths(cfg: TrainConfig, base: Path) -> TrainConfig:
    def fix(path: str) -> str:
        return str(base / path) if path and not Path(path).is_absolute() else path

    def source(src: Source) -> Source:
        return dataclasses.replace(src, path=fix(src.path), lr_path=fix(src.lr_path))

    data = dataclasses.replace(
        cfg.data, train=[source(s) for s in cfg.data.train], val=[source(s) for s in cfg.data.val]
    )
    per = dataclasses.replace(cfg.loss.perceptual, weights_path=fix(cfg.loss.perceptual.weights_path))
    model = dataclasses.replace(cfg.model, init=fix(cfg.model.init) if cfg.model.init else None)
    return dataclasses.replace(cfg, data=data, model=model, loss=dataclasses.replace(cfg.loss, perceptual=per))
