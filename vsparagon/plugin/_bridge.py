"""The Python half of ``core.paragon.Upscale``.

The native shim (``native/paragon_shim.c``) owns the ``paragon`` namespace and,
for every ``core.paragon.Upscale(...)`` call, parks the argument map under an
integer token and calls :func:`create` with it. Nothing else should call this
module.
"""

from __future__ import annotations

from typing import Any

import vapoursynth as vs

PREFIX = "paragon.Upscale: "


def create(token: int) -> None:
    """Build the clip of the running call ``token`` and hand it back to the shim.

    Raises:
        vs.Error: with a message that starts with ``paragon.Upscale: `` (the
            shim passes it to the caller unchanged).
    """
    paragon = vs.core.paragon
    args = paragon.Fetch_(token=token)
    clip, kwargs = _python_arguments(args)
    try:
        from vsparagon.plugin import upscale

        result = upscale(clip, **kwargs)
    except vs.Error as e:
        if str(e).startswith(PREFIX):
            raise
        raise vs.Error(f"{PREFIX}{e}") from e
    except Exception as e:  # a bug, not a user error: keep its type in the message
        raise vs.Error(f"{PREFIX}{type(e).__name__}: {e}") from e
    if not isinstance(result, vs.VideoNode):
        raise vs.Error(f"{PREFIX}internal error: upscale() returned {type(result).__name__}, not a clip")
    paragon.Bind_(clip=result, token=token)


def _python_arguments(args: Any) -> tuple[vs.VideoNode, dict[str, Any]]:
    """Split what ``Fetch_`` returned into the clip and ``upscale``'s keyword arguments.

    VapourSynth returns a lone value when the map has one key (``clip``, the
    only required one) and a dict otherwise. Its maps have no bool and no
    tuple, so ``fp16`` arrives as 0/1 and ``tile=[w, h]`` as a list.
    """
    kwargs = dict(args) if isinstance(args, dict) else {"clip": args}
    clip = kwargs.pop("clip")
    if "fp16" in kwargs:
        kwargs["fp16"] = bool(kwargs["fp16"])
    if isinstance(kwargs.get("tile"), list):
        kwargs["tile"] = tuple(kwargs["tile"])
    return clip, kwargs
