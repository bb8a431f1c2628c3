"""Video files in and out: ffmpeg command lines, colour tags, progress, and the upscale pipeline.

Everything here except :mod:`vsparagon.video.pipeline` is pure Python (no VapourSynth).
"""
