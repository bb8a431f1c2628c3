"""The model descriptor: everything a runtime needs to know about a model.

The descriptor travels with every checkpoint (safetensors metadata) and every
ONNX export (``metadata_props``), so that a runtime never has to inspect module
internals. This module is pure Python: the runtime and the VapourSynth layer
read descriptors without importing torch (see :mod:`vsparagon.catalogue.files`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from vsparagon.errors import CheckpointError

#: Key under which the descriptor JSON is stored in safetensors and ONNX metadata.
METADATA_KEY = "vsparagon"
#: Bumped when the checkpoint layout changes incompatibly. 2: the block design is recorded
#: (ParagonSR ``config["gate"]``); version-1 files are read as the unbounded ``gelu`` design.
FORMAT_VERSION = 2
#: Versions this vsparagon reads (older ones are migrated on reading, see :func:`_migrate`).
READABLE_VERSIONS = (1, 2)
#: ``receptive_radius`` of a model whose reach is not known (a foreign ONNX graph).
UNKNOWN_RADIUS = -1
#: Feature channels assumed for memory estimates when a descriptor has no ``config["dim"]``.
DEFAULT_WORKING_CHANNELS = 64


@dataclass(frozen=True, kw_only=True)
class ModelDescriptor:
    """What a checkpoint or ONNX file is, in the runtime's terms."""

    arch: str
    """Architecture family, e.g. ``"paragonsr"``."""
    variant: str
    """Registered variant name, e.g. ``"paragonsr_tiny"`` (``"custom"`` if none)."""
    scale: int
    """Output size / input size along each axis."""
    in_channels: int = 3
    """Input planes (3 = RGB)."""
    out_channels: int = 3
    """Output planes (3 = RGB)."""
    multiple_of: int = 1
    """Input height and width must be a multiple of this (1 = any size); runtimes pad to it and crop back."""
    min_size: int = 0
    """Input height and width must be at least this (0 = any size); a smaller clip or tile is refused."""
    square: bool = False
    """Input must be square (height == width): the clip must be, and tiles are."""
    receptive_radius: int = 0
    """How far, in input pixels, one output pixel can see; tiling overlap >= this is exact.

    :data:`UNKNOWN_RADIUS` (-1) means not known (a foreign ONNX graph): the tiling policy
    (:func:`vsparagon.runtime.policy.plan_frame`) then uses a documented default overlap.
    """
    global_context: bool = False
    """The output depends on more than a bounded neighbourhood: attention over the whole picture,
    global pooling, a reach the receptive-field probe could not bound, or output that changes with
    where the picture is cut. No overlap makes tiles exact, so the tiling policy joins tiles with
    blending (``receptive_radius`` is then :data:`UNKNOWN_RADIUS`).
    """
    fp16_safe: bool = True
    """Whether half-precision inference is expected to stay finite on [0, 1] inputs.

    A backend's default precision (``fp16=None``) uses half precision only for models that say so.
    """
    fused: bool = False
    """True for the inference form (reparameterized branches merged)."""
    config: dict[str, Any] = field(default_factory=dict)
    """Architecture hyperparameters, enough to rebuild the module without the variant table."""
    format_version: int = FORMAT_VERSION
    """Checkpoint format version this descriptor was written with."""

    @property
    def working_channels(self) -> int:
        """Feature channels the model's body holds per pixel (``config["dim"]``), for memory estimates.

        :data:`DEFAULT_WORKING_CHANNELS` when the descriptor does not say (a foreign graph).
        """
        dim = self.config.get("dim")
        return dim if isinstance(dim, int) and not isinstance(dim, bool) and dim > 0 else DEFAULT_WORKING_CHANNELS

    def to_json(self) -> str:
        """Serialize to the JSON string stored in file metadata.

        The fields of :data:`LATER_FIELDS` are written only where they differ from their
        defaults, so a model that does not use them reads in every vsparagon of this format.
        """
        data = asdict(self)
        for name, default in LATER_FIELDS.items():
            if data[name] == default:
                del data[name]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, *, source: str = "<metadata>") -> ModelDescriptor:
        """Parse a descriptor written by :meth:`to_json`.

        Raises:
            CheckpointError: if the text is not a descriptor this version understands.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{source}: the vsparagon metadata is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise CheckpointError(f"{source}: the vsparagon metadata is not a JSON object")
        version = data.get("format_version")
        if version not in READABLE_VERSIONS:
            raise CheckpointError(
                f"{source}: checkpoint format version {version!r} is not supported "
                f"(this vsparagon reads versions {', '.join(map(str, READABLE_VERSIONS))}); "
                "upgrade vsparagon or re-save the model"
            )
        data = _migrate(data)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(
                f"{source}: unknown descriptor fields {unknown}; was it written by a newer vsparagon?"
            )
        try:
            return cls(**data)
        except TypeError as exc:
            raise CheckpointError(f"{source}: incomplete vsparagon metadata ({exc})") from None


#: Fields added within format 2, with their defaults (for foreign models: size requirements and global
#: context); :meth:`ModelDescriptor.to_json` leaves them out at these values.
LATER_FIELDS: dict[str, object] = {"min_size": 0, "square": False, "global_context": False}


def _migrate(data: dict[str, Any]) -> dict[str, Any]:
    """A version-1 descriptor in today's terms; the model itself is unchanged.

    Version 1 had one ParagonSR block design, the unbounded ``gelu`` gate: its config gets
    ``gate: "gelu"`` (so it rebuilds exactly) and ``fp16_safe`` becomes false (it overflows
    fp16 on ordinary patterns). The file still loads and runs as it always did.
    """
    if data.get("format_version") != 1:
        return data
    data = dict(data)
    if data.get("arch") == "paragonsr" and isinstance(data.get("config"), dict):
        data["config"] = {"gate": "gelu", **data["config"]}
        data["fp16_safe"] = False
    data["format_version"] = FORMAT_VERSION
    return data
