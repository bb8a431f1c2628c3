"""Throughput and memory measurement shared by ``paragon bench`` and ``benchmarks/vs_bench.py``.

:mod:`~vsparagon.bench.measure` is plain Python; :mod:`~vsparagon.bench.contenders` and
:mod:`~vsparagon.bench.child` are the VapourSynth layer.
"""
