"""Candidate rewrites of the CPU graph, beyond ``runtime.graph_rewrite``, timed on bare OpenVINO.

fp32 unless ``--precision`` says otherwise (bf16 on a CPU with AVX-512 BF16).

A record of what was tried to make the OpenVINO path faster, so it is not tried again
blindly. ``base`` is the graph OpenVINO loads today (``rewrite_for_cpu(model, "openvino")``:
split convs, depthwise branches merged in two halves, RMSNorm by ``ReduceL2``, nearest
enlargement by ``Gather``); the others:

* ``ort``: ONNX Runtime's graph (the depthwise branches merged over all channels, no Split);
* ``v1``: the rewrite of REWRITE_VERSION 1 (split convs and full-width depthwise only), which
  both backends loaded until 2026-12-06;
* ``base+gamma``: the RMSNorm's per-channel gain folded into the two 1x1 convs that read it;
* ``base+near``: the nearest-neighbour enlargement as a 1x1 conv of 0/1 weights added before the
  pixel shuffle (in bf16 that add runs in bf16: less accurate);
* ``ort+dw3`` / ``ort+dw11``: the three full-width depthwise convs (3x3, 1x11, 11x1) as a 3x11
  plus an 11x1, or as one 11x11;
* ``ffn1``: the FFN's conv -> Split kept (only the depthwise branches merged);
* ``ctx1``: the context Split kept (only the FFN conv split; its parts are 8-channel aligned);
* ``asis``: the graph as shipped.

Each prints its largest difference from ``base`` and its frame rate: two streams of one
thread (as the plugin runs on two cores), 640x480 input, 6 frames per round, best round.
Run from the repository root::

    .venv/bin/python benchmarks/rewrite_candidates.py models/paragonsr_tiny_x2.onnx --rounds 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import openvino as ov
from onnx import helper

from vsparagon.catalogue.files import read_onnx
from vsparagon.runtime.graph_rewrite import _attrs, _Graph, merge_depthwise_branches, rewrite_for_cpu, split_convs

CANDIDATES = ("base", "ort", "v1", "base+gamma", "base+near", "ort+dw3", "ort+dw11", "ffn1", "ctx1", "asis")


def fold_norm_gamma(model: Any) -> Any:
    """``Mul(x, gain[1, C, 1, 1])`` read only by group-1 convs: the gain moves into their weights."""
    g = _Graph(model)
    for node in g.graph.node:
        gain = g.arrays.get(node.input[1]) if node.op_type == "Mul" and len(node.input) > 1 else None
        if gain is None or gain.ndim != 4 or gain.shape[0] != 1 or gain.shape[2:] != (1, 1):
            continue
        readers = g.consumers.get(node.output[0], [])
        if not readers or not all(
            r.op_type == "Conv" and r.input[0] == node.output[0] and _attrs(r).get("group", 1) == 1
            and r.input[1] in g.arrays
            for r in readers
        ):  # fmt: skip
            continue
        for r in readers:
            weight = (g.arrays[r.input[1]] * gain.reshape(1, -1, 1, 1)).astype(np.float32)
            inputs = [node.input[0], g.add_array(r.input[1], weight), *r.input[2:]]
            g.replaced[id(r)] = [helper.make_node("Conv", inputs, list(r.output), name=r.name, **_attrs(r))]
        g.replaced[id(node)] = []
    return g.build()


def fold_nearest(model: Any, scale: int) -> Any:
    """``Add(DepthToSpace(y), nearest(input))`` as ``DepthToSpace(y + Conv1x1(input, 0/1 weights))``."""
    g = _Graph(model)
    out = g.graph.output[0].name
    add = g.producer[out]
    shuffle = g.producer[add.input[0]]
    mode = _attrs(shuffle).get("mode", b"DCR") if shuffle.op_type == "DepthToSpace" else None
    if add.op_type != "Add" or mode not in (b"CRD", "CRD") or _attrs(shuffle)["blocksize"] != scale:
        raise ValueError("not a ParagonSR tail: Add(DepthToSpace CRD, nearest enlargement)")
    weight = np.zeros((3 * scale * scale, 3, 1, 1), np.float32)
    for c in range(3):
        weight[c * scale * scale : (c + 1) * scale * scale, c] = 1
    repeated, summed = g.fresh("repeated"), g.fresh("summed")
    g.replaced[id(shuffle)] = [
        helper.make_node("Conv", ["input", g.add_array("repeat_w", weight)], [repeated], kernel_shape=[1, 1]),
        helper.make_node("Add", [shuffle.input[0], repeated], [summed]),
        helper.make_node("DepthToSpace", [summed], [out], blocksize=scale, mode="CRD", name=shuffle.name),
    ]
    g.replaced[id(add)] = []
    return prune(g.build())


def prune(model: Any) -> Any:
    """Drop nodes and initializers nothing reads any more (the dead enlargement subgraph)."""
    live = {o.name for o in model.graph.output}
    kept = []
    for node in reversed(model.graph.node):
        if any(o in live for o in node.output):
            kept.append(node)
            live |= set(node.input)
    del model.graph.node[:]
    model.graph.node.extend(reversed(kept))
    initializers = [t for t in model.graph.initializer if t.name in live]
    del model.graph.initializer[:]
    model.graph.initializer.extend(initializers)
    return model


def merge_depthwise_kernels(model: Any, single: bool) -> Any:
    """The summed 3x3, 1x11 and 11x1 depthwise convs of ``rewrite_for_cpu`` as one 11x11, or a 3x11 plus the 11x1."""
    g = _Graph(model)
    for node in g.graph.node:
        if node.op_type != "Conv" or not node.name.startswith("DepthwiseMerged") or not g.free(node):
            continue
        source = node.input[0]
        convs = [r for r in g.consumers[source] if r.op_type == "Conv" and r.name.startswith("DepthwiseMerged")]
        by_kernel = {tuple(_attrs(c)["kernel_shape"]): c for c in convs}
        if set(by_kernel) != {(3, 3), (1, 11), (11, 1)} or not all(g.free(c) for c in convs):
            continue
        square, wide, tall = by_kernel[(3, 3)], by_kernel[(1, 11)], by_kernel[(11, 1)]
        first_sum, last_sum = g.only_consumer(wide.output[0]), g.only_consumer(tall.output[0])
        ws, ww, wt = (g.arrays[c.input[1]] for c in (square, wide, tall))

        def conv(weight: np.ndarray, output: str, bias: str | None = None, source: str = source) -> Any:
            kh, kw = weight.shape[2:]
            inputs = [source, g.add_array("dw", weight.astype(np.float32)), *([bias] if bias else [])]
            pads = [kh // 2, kw // 2, kh // 2, kw // 2]
            groups = weight.shape[0]
            return helper.make_node("Conv", inputs, [output], group=groups, kernel_shape=[kh, kw], pads=pads)

        if single:
            weight = np.zeros((ws.shape[0], 1, 11, 11), np.float32)
            weight[:, :, 4:7, 4:7] += ws
            weight[:, :, 5:6, :] += ww
            weight[:, :, :, 5:6] += wt
            nodes = [conv(weight, last_sum.output[0], square.input[2])]
        else:
            weight = np.zeros((ws.shape[0], 1, 3, 11), np.float32)
            weight[:, :, :, 4:7] += ws
            weight[:, :, 1:2, :] += ww
            a, b = g.fresh("dw_a"), g.fresh("dw_b")
            nodes = [
                conv(weight, a, square.input[2]),
                conv(wt, b),
                helper.make_node("Add", [b, a], [last_sum.output[0]]),
            ]
        for dead in (square, wide, tall, first_sum):
            g.replaced[id(dead)] = []
        g.replaced[id(last_sum)] = nodes
    return g.build()


def build(name: str, model: Any, scale: int) -> Any:
    """The candidate graph ``name``."""
    if name == "asis":
        return model
    if name == "ffn1":
        return merge_depthwise_branches(model)[0]
    if name == "ctx1":
        return split_convs(model)[0]
    if name == "v1":
        return merge_depthwise_branches(split_convs(model)[0])[0]
    first, *steps = name.split("+")
    out = rewrite_for_cpu(model, "onnxruntime" if first == "ort" else "openvino")[0]
    for step in steps:
        if step == "gamma":
            out = fold_norm_gamma(out)
        elif step == "near":
            out = fold_nearest(out, scale)
        else:
            out = merge_depthwise_kernels(out, single=step == "dw11")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path, help="a ParagonSR fp32 ONNX (ours: RMSNorm block, CRD pixel shuffle)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", help="comma-separated candidates (default: all)")
    parser.add_argument(
        "--precision", default="f32", choices=("f32", "bf16", "f16"), help="OpenVINO's INFERENCE_PRECISION_HINT"
    )
    args = parser.parse_args()
    source = onnx.load(str(args.model))
    descriptor = read_onnx(args.model).descriptor
    if descriptor is None:
        parser.error(f"{args.model}: not one of our ONNX files (no descriptor)")
    scale = descriptor.scale
    names = args.only.split(",") if args.only else list(CANDIDATES)
    core = ov.Core()
    x = np.random.default_rng(0).random((1, 3, 480, 640), dtype=np.float32)
    config = {"INFERENCE_NUM_THREADS": 2, "NUM_STREAMS": 2, "PERFORMANCE_HINT": "THROUGHPUT"}
    config["INFERENCE_PRECISION_HINT"] = args.precision
    compiled, reference = {}, None
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            path = Path(tmp) / f"{name}.onnx"
            onnx.save(build(name, source, scale), str(path))
            model = core.read_model(str(path))
            model.reshape({0: [1, 3, 480, 640]})
            compiled[name] = core.compile_model(model, "CPU", config)
            y = compiled[name].create_infer_request().infer({0: x})[0].copy()
            reference = y if reference is None else reference
            print(f"{name:12s} max |diff| vs {names[0]}: {float(np.abs(y - reference).max()):.2e}", flush=True)
    fps: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            queue = ov.AsyncInferQueue(compiled[name], 2)
            for _ in range(2):
                queue.start_async({0: x})
            queue.wait_all()
            start = time.perf_counter()
            for _ in range(6):
                queue.start_async({0: x})
            queue.wait_all()
            fps[name].append(6 / (time.perf_counter() - start))
    for name in names:
        print(f"{name:12s} {max(fps[name]):.3f} fps (best of {[round(v, 3) for v in fps[name]]})")


if __name__ == "__main__":
    main()
