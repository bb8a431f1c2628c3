"""Throughput and memory measurement shared by ``paragon bench`` and the scripts in ``benchmarks/``.

:mod:`~vsparagon.bench.measure` (timing, host and GPU memory), :mod:`~vsparagon.bench.rows`
(which rows exist, why a GPU row is skipped, one row per process), :mod:`~vsparagon.bench.bare`
(a backend's session alone) and :mod:`~vsparagon.bench.mlrt_trt` (vs-mlrt's TensorRT engines)
are plain Python; :mod:`~vsparagon.bench.contenders` and :mod:`~vsparagon.bench.child` are the
VapourSynth layer.
"""
