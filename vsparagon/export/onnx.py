"""Fused checkpoint -> ONNX, with a parity check against PyTorch before the file appears.

The graph has one input ``input`` (N, 3, H, W) and one output ``output``
(N, 3, H*scale, W*scale), with dynamic batch, height and width. Values are RGB in
[0, 1]. An fp16 export takes and returns float16 tensors; an fp32 export float32.
The model descriptor is stored in the graph's ``metadata_props`` under
``vsparagon`` and the precision under ``vsparagon_precision``.
"""

from __future__ import annotations

import copy
import io
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from vsparagon._files import atomic_write
from vsparagon.catalogue.descriptor import METADATA_KEY, ModelDescriptor
from vsparagon.errors import ExportError
from vsparagon.models.fusion import fuse
from vsparagon.models.registry import describe, entry_of
from vsparagon.onnx_fp16 import to_float16

#: Max abs difference allowed between ONNX Runtime (fp32 graph) and PyTorch fp32.
FP32_TOLERANCE = 1e-4
#: Max abs difference allowed between ONNX Runtime (fp16 graph) and PyTorch fp32.
#: float16 has an 11-bit mantissa (spacing 2**-11 .. 2**-10 for values in [0.5, 2]);
#: a few hundred rounded ops in sequence stay well under this on [0, 1] inputs.
FP16_TOLERANCE = 2e-2
#: Opsets this exporter has been checked with (ONNX Runtime loads all of them).
OPSETS = range(11, 24)
DEFAULT_OPSET = 17
PRECISION_KEY = "vsparagon_precision"

Precision = Literal["fp32", "fp16"]


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_onnx` wrote and how well it matched PyTorch."""

    path: Path
    """The ONNX file."""
    precision: Precision
    """``"fp32"`` or ``"fp16"`` (the graph's input/output dtype too)."""
    opset: int
    """ONNX opset of the graph."""
    max_abs_error: float
    """Max |ONNX Runtime - PyTorch fp32| on the check input (NaN if not verified)."""
    tolerance: float
    """The bound ``max_abs_error`` had to meet."""
    descriptor: ModelDescriptor
    """The descriptor stored in the file."""


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    fp16: bool = False,
    opset: int = DEFAULT_OPSET,
    verify: bool = True,
    fused: bool = True,
) -> ExportReport:
    """Write ``model`` as an ONNX graph, atomically, after checking it against PyTorch.

    Args:
        model: a model of a registered architecture, in training or fused form (it is not modified).
        path: destination ``.onnx`` file; it appears only if export and check succeed.
        fp16: export a float16 graph (float16 input and output).
        opset: ONNX opset, one of :data:`OPSETS`.
        verify: run the graph in ONNX Runtime (CPU) and compare with PyTorch.
        fused: export the fused inference form (the default). ``False`` keeps the
            training-time branches, which is only useful to measure what fusion buys.

    Raises:
        ExportError: bad opset or destination, exporter failure, or a parity failure.
    """
    entry_of(model)  # a model of a registered architecture, or TypeError
    reference = fuse(model).float().cpu()
    return export_module(
        reference if fused else _training_form(model),
        replace(describe(reference), fused=fused),
        path,
        fp16=fp16,
        opset=opset,
        verify=verify,
        reference=reference,
        training=not fused,
    )


def export_module(
    module: nn.Module,
    descriptor: ModelDescriptor,
    path: str | os.PathLike[str],
    *,
    fp16: bool = False,
    opset: int = DEFAULT_OPSET,
    verify: bool = True,
    reference: nn.Module | None = None,
    training: bool = False,
    hint: str = "",
) -> ExportReport:
    """Write an image-to-image ``module`` with ``descriptor`` in its metadata, as :func:`export_onnx` does.

    Args:
        module: ``(N, C, H, W) -> (N, C', H*s, W*s)`` with C, C' and s from ``descriptor``.
        descriptor: stored in the graph; its channels and size requirements shape the trace and check inputs.
        path, fp16, opset, verify: as for :func:`export_onnx`.
        reference: what the graph is compared with (default: ``module``).
        training: trace the training-time form.
        hint: appended to a parity failure's message (what to do instead).
    """
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in OPSETS:
        raise ExportError(f"unsupported opset {opset!r}; use one of {OPSETS.start}..{OPSETS.stop - 1}")
    target = Path(path)
    if not target.parent.is_dir():
        raise ExportError(f"{target}: folder {target.parent} does not exist")
    if target.is_dir():
        raise ExportError(f"{target}: is a folder; give a file name such as model.onnx")
    check = (reference if reference is not None else module).eval()
    precision: Precision = "fp16" if fp16 else "fp32"
    tolerance = FP16_TOLERANCE if fp16 else FP32_TOLERANCE
    error = float("nan")

    def write(tmp: Path) -> None:
        nonlocal error
        try:
            proto = _export_proto(module, descriptor, fp16=fp16, opset=opset, training=training)
        except ExportError as exc:
            raise ExportError(f"{exc}{hint}") from exc
        _set_metadata(proto, {METADATA_KEY: descriptor.to_json(), PRECISION_KEY: precision})
        _save_proto(proto, tmp)
        if verify:
            error = _parity_error(check, tmp, descriptor, fp16=fp16)
            if not error <= tolerance:  # also catches NaN
                raise ExportError(
                    f"{target}: ONNX Runtime output differs from PyTorch by {error:.3g} "
                    f"(allowed {tolerance:g} for {precision}); the file was not written"
                    + ("; the model may not be fp16-safe, export without --fp16" if fp16 else "")
                    + hint
                )

    atomic_write(target, write)
    return ExportReport(target, precision, opset, error, tolerance, descriptor)


def _training_form(model: nn.Module) -> nn.Module:
    clone = copy.deepcopy(model).float().cpu()
    return clone.train()


def _input_size(descriptor: ModelDescriptor, height: int, width: int) -> tuple[int, int]:
    """``height x width`` grown to what the model accepts (its minimum, size multiple and squareness)."""
    m = max(1, descriptor.multiple_of)
    h, w = (-(-max(n, descriptor.min_size) // m) * m for n in (height, width))
    return (max(h, w), max(h, w)) if descriptor.square else (h, w)


def _export_proto(module: nn.Module, descriptor: ModelDescriptor, *, fp16: bool, opset: int, training: bool):  # noqa: ANN202
    import onnx

    dummy = torch.rand(1, descriptor.in_channels, *_input_size(descriptor, 32, 32))
    buffer = io.BytesIO()
    mode = torch.onnx.TrainingMode.TRAINING if training else torch.onnx.TrainingMode.EVAL
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter warns it is deprecated
            # The TorchScript-based exporter: fast, and its graphs for plain convs
            # are what TensorRT and OpenVINO parse best.
            torch.onnx.export(
                module,
                (dummy,),
                buffer,  # type: ignore[arg-type]  # file-like objects are accepted
                dynamo=False,
                opset_version=opset,
                training=mode,
                do_constant_folding=not training,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={
                    "input": {0: "batch", 2: "height", 3: "width"},
                    "output": {0: "batch", 2: "out_height", 3: "out_width"},
                },
            )
    except Exception as exc:  # the exporter raises many unrelated types
        raise ExportError(f"the ONNX exporter failed at opset {opset}: {exc}") from exc
    proto = onnx.load_from_string(buffer.getvalue())
    # Tracing in float16 would run PyTorch's (very slow) CPU half kernels; the
    # graph is converted instead, and the parity check compares it with fp32.
    return to_float16(proto) if fp16 else proto


def _set_metadata(proto, values: dict[str, str]) -> None:  # noqa: ANN001
    for key, value in values.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def _save_proto(proto, path: Path) -> None:  # noqa: ANN001
    import onnx

    try:
        onnx.save_model(proto, str(path))
    except OSError as exc:
        raise ExportError(f"could not write {path}: {exc.strerror or exc}") from exc


def picture_like(batch: int, height: int, width: int, *, generator: torch.Generator) -> torch.Tensor:
    """A random ``(batch, 3, height, width)`` picture in [0, 1]: smooth colours, texture, mild noise.

    That is what SR models are made for, and the input to compare two forms of a model on.
    Uniform per-pixel noise is not: trained ParagonSR models amplify such extreme input (their
    gated FFNs are quadratic), to values where an absolute tolerance says nothing about the
    export and fp16 overflows.
    """
    coarse = torch.rand(batch, 3, -(-height // 4), -(-width // 4), generator=generator)
    x = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
    return (x + 0.05 * torch.randn(x.shape, generator=generator)).clamp(0, 1)


def _parity_error(reference: nn.Module, path: Path, descriptor: ModelDescriptor, *, fp16: bool) -> float:
    """Max |ORT - torch fp32| on a fixed odd-sized :func:`picture_like` input, batch 2.

    The size differs from the traced one, so a graph that froze a traced size fails here.
    """
    import onnxruntime as ort

    height, width = _input_size(descriptor, 37, 45)
    x = picture_like(2, height, width, generator=torch.Generator().manual_seed(1234))[:, : descriptor.in_channels]
    with torch.no_grad():
        expected = reference(x).numpy()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = x.numpy().astype(np.float16 if fp16 else np.float32)
    (got,) = session.run(["output"], {"input": feed})
    if got.shape != expected.shape:
        raise ExportError(f"ONNX output shape {got.shape} differs from PyTorch {expected.shape}")
    return float(np.abs(got.astype(np.float32) - expected).max())


def read_onnx_descriptor(path: str | os.PathLike[str]) -> tuple[ModelDescriptor, Precision]:
    """Read the descriptor and precision stored in an ONNX file by :func:`export_onnx`."""
    import onnx

    source = Path(path)
    try:
        proto = onnx.load_model(str(source), load_external_data=False)
    except Exception as exc:
        raise ExportError(f"{source}: not a readable ONNX file ({exc})") from None
    props = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY not in props:
        raise ExportError(f"{source}: an ONNX file without vsparagon metadata (not written by paragon export)")
    precision: Precision
    match props.get(PRECISION_KEY, "fp32"):
        case "fp32":
            precision = "fp32"
        case "fp16":
            precision = "fp16"
        case other:
            raise ExportError(f"{source}: unknown precision {other!r} in metadata")
    return ModelDescriptor.from_json(props[METADATA_KEY], source=str(source)), precision
