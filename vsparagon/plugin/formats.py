"""Format handling: any constant-format clip to the model's RGBS and back to the same format.

Colour metadata comes from frame properties (``_Matrix``, ``_ColorRange``,
``_ChromaLocation``) of the first frame; when absent, the defaults are the usual
ones: BT.709 for HD and larger, BT.601 (170m) below, limited range for YUV and
GRAY, full range for RGB, left chroma siting.
"""

from __future__ import annotations

from dataclasses import dataclass

import vapoursynth as vs

from vsparagon.errors import ConfigError

_MATRIX_NAMES = {1: "709", 4: "fcc", 5: "470bg", 6: "170m", 7: "240m", 8: "ycgco", 9: "2020ncl", 10: "2020cl"}
_CHROMALOC_NAMES = {0: "left", 1: "center", 2: "top_left", 3: "top", 4: "bottom_left", 5: "bottom"}


@dataclass(frozen=True)
class ColorInfo:
    """How to read (and write back) a clip's colours."""

    matrix: str
    """zimg matrix name for YUV (e.g. ``"709"``); unused for RGB and GRAY."""
    full_range: bool
    """True for full range (PC), False for limited (TV)."""
    chromaloc: str
    """zimg chroma location name."""


def check_format(clip: vs.VideoNode) -> vs.VideoFormat:
    """Reject clips whose format or size varies, empty clips and unsupported formats."""
    fmt = clip.format
    if fmt is None or fmt.id == vs.PresetVideoFormat.NONE or clip.width == 0 or clip.height == 0:
        raise ConfigError(
            "clip has a variable format or size; make it constant first (e.g. with resize.Bicubic(width=, "
            "height=, format=))"
        )
    if clip.num_frames < 1:
        raise ConfigError("clip has no frames")
    if fmt.color_family not in (vs.RGB, vs.YUV, vs.GRAY):
        raise ConfigError(f"clip format {fmt.name} is not RGB, YUV or GRAY")
    if fmt.sample_type == vs.INTEGER and not 8 <= fmt.bits_per_sample <= 16:
        raise ConfigError(f"clip format {fmt.name}: integer clips must have 8 to 16 bits")
    if fmt.sample_type == vs.FLOAT and fmt.bits_per_sample not in (16, 32):
        raise ConfigError(f"clip format {fmt.name}: float clips must be 16 or 32 bit")
    return fmt


def color_info(clip: vs.VideoNode, props: vs.FrameProps) -> ColorInfo:
    """Colour metadata of ``clip`` from its first frame's properties ``props``, with defaults."""
    fmt = clip.format
    assert fmt is not None  # checked by check_format before
    hd = clip.width >= 1280 or clip.height >= 720
    matrix = _MATRIX_NAMES.get(int(props.get("_Matrix", -1)), "709" if hd else "170m")
    if "_Range" in props:  # R74+: 1 = full, 0 = limited
        full = int(props["_Range"]) == 1
    elif "_ColorRange" in props:  # older: 0 = full, 1 = limited
        full = int(props["_ColorRange"]) == 0
    else:
        full = fmt.color_family == vs.RGB or fmt.sample_type == vs.FLOAT
    chromaloc = _CHROMALOC_NAMES.get(int(props.get("_ChromaLocation", 0)), "left")
    return ColorInfo(matrix=matrix, full_range=full, chromaloc=chromaloc)


def to_rgbs(clip: vs.VideoNode, info: ColorInfo, *, half: bool = False) -> vs.VideoNode:
    """Convert to RGBS (``half``: RGBH) in [0, 1] at the same size (chroma upsampled with Spline36)."""
    fmt = clip.format
    assert fmt is not None
    rng = "full" if info.full_range else "limited"
    rgb, gray = (vs.RGBH, vs.GRAYH) if half else (vs.RGBS, vs.GRAYS)
    if half and fmt.id == rgb:  # a half-float clip goes in as it is
        return clip
    if fmt.color_family == vs.RGB:
        return clip.resize.Point(format=rgb, range_in_s=rng)
    if fmt.color_family == vs.GRAY:
        plane = clip.resize.Point(format=gray, range_in_s=rng)
        return vs.core.std.ShufflePlanes([plane, plane, plane], [0, 0, 0], vs.RGB)
    return clip.resize.Spline36(format=rgb, matrix_in_s=info.matrix, range_in_s=rng, chromaloc_in_s=info.chromaloc)


def to_grays(clip: vs.VideoNode, info: ColorInfo, *, half: bool = False) -> vs.VideoNode:
    """Convert a GRAY clip to GRAYS (``half``: GRAYH) in [0, 1] at the same size (a grey model: one plane)."""
    gray = vs.GRAYH if half else vs.GRAYS
    if half and clip.format.id == gray:
        return clip
    return clip.resize.Point(format=gray, range_in_s="full" if info.full_range else "limited")


def from_rgbs(rgb: vs.VideoNode, fmt: vs.VideoFormat, info: ColorInfo) -> vs.VideoNode:
    """Convert an upscaled RGBS/RGBH clip (GRAYS/GRAYH from :func:`to_grays`) back to ``fmt`` with the source's
    colour metadata."""
    rng = "full" if info.full_range else "limited"
    if rgb.format.id == fmt.id and fmt.bits_per_sample == 16:  # RGBH in, RGBH out: nothing to convert
        return rgb
    if fmt.color_family == vs.RGB or rgb.format.color_family == vs.GRAY:
        return rgb.resize.Point(format=fmt.id, range_s=rng)
    if fmt.color_family == vs.GRAY:
        return _plane_mean(rgb).resize.Point(format=fmt.id, range_s=rng)
    return rgb.resize.Spline36(format=fmt.id, matrix_s=info.matrix, range_s=rng, chromaloc_s=info.chromaloc)


def _plane_mean(rgb: vs.VideoNode) -> vs.VideoNode:
    """GRAYS = (R + G + B) / 3: the model sees a grey image as three equal planes."""
    planes = [vs.core.std.ShufflePlanes(rgb, i, vs.GRAY) for i in range(3)]
    return vs.core.std.Expr(planes, "x y + z + 3 /")
