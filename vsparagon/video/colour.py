"""Colour metadata: VapourSynth frame properties (ITU-T H.273 codes) to ffmpeg's names.

VapourSynth R81 stores ``_Matrix``, ``_Primaries`` and ``_Transfer`` as H.273 code
points and ``_Range`` as 0 = limited (tv), 1 = full (pc); ``_ColorRange`` (older
cores) has it the other way round. 2 means "unspecified" and is left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

MATRIX = {
    0: "rgb",
    1: "bt709",
    4: "fcc",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "ycgco",
    9: "bt2020nc",
    10: "bt2020c",
    11: "smpte2085",
    12: "chroma-derived-nc",
    13: "chroma-derived-c",
    14: "ictcp",
}
PRIMARIES = {
    1: "bt709",
    4: "bt470m",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "film",
    9: "bt2020",
    10: "smpte428",
    11: "smpte431",
    12: "smpte432",
    22: "jedec-p22",
}
TRANSFER = {
    1: "bt709",
    4: "gamma22",
    5: "gamma28",
    6: "smpte170m",
    7: "smpte240m",
    8: "linear",
    9: "log100",
    10: "log316",
    11: "iec61966-2-4",
    12: "bt1361e",
    13: "iec61966-2-1",
    14: "bt2020-10",
    15: "bt2020-12",
    16: "smpte2084",
    17: "smpte428",
    18: "arib-std-b67",
}


@dataclass(frozen=True)
class ColourTags:
    """ffmpeg's names for a stream's colour metadata; None = not known (left untagged)."""

    matrix: str | None = None
    """``-colorspace`` (e.g. ``bt709``)."""
    primaries: str | None = None
    """``-color_primaries``."""
    transfer: str | None = None
    """``-color_trc``."""
    range: str | None = None
    """``-color_range``: ``tv`` (limited) or ``pc`` (full)."""

    def setparams(self) -> str | None:
        """The ``setparams`` filter that stamps these tags on every frame, or None when there are none.

        Frame-level tags reach every encoder and muxer; ffmpeg's ``-color_*`` output
        options alone do not always (y4m input carries no colour information).
        """
        parts = [
            f"{key}={value}"
            for key, value in (
                ("colorspace", self.matrix),
                ("color_primaries", self.primaries),
                ("color_trc", self.transfer),
                ("range", self.range),
            )
            if value is not None
        ]
        return "setparams=" + ":".join(parts) if parts else None

    def output_options(self) -> list[str]:
        """The matching ffmpeg output options (stream/container-level tags)."""
        options: list[str] = []
        for flag, value in (
            ("-colorspace", self.matrix),
            ("-color_primaries", self.primaries),
            ("-color_trc", self.transfer),
            ("-color_range", self.range),
        ):
            if value is not None:
                options += [flag, value]
        return options


def tags_from_props(props: Mapping[str, object]) -> ColourTags:
    """Colour tags from a frame's properties; unknown or unspecified values are left out."""
    return ColourTags(
        matrix=MATRIX.get(_int(props.get("_Matrix"))),
        primaries=PRIMARIES.get(_int(props.get("_Primaries"))),
        transfer=TRANSFER.get(_int(props.get("_Transfer"))),
        range=_range(props),
    )


def _range(props: Mapping[str, object]) -> str | None:
    if "_Range" in props:
        return {0: "tv", 1: "pc"}.get(_int(props["_Range"]))
    if "_ColorRange" in props:
        return {0: "pc", 1: "tv"}.get(_int(props["_ColorRange"]))
    return None


def _int(value: object) -> int:
    """An int-like property value (plain int or an IntEnum such as ``vs.RANGE_LIMITED``), else -1."""
    if isinstance(value, int):
        return int(value)
    return -1
