"""The CPU graph rewrite: same values as the graph as given, the ParagonSR splits gone (OpenVINO: one
block-aligned split per context left), others left alone.

Equality is checked by running both graphs in real ONNX Runtime sessions (and OpenVINO for its graph).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from vsparagon.export.onnx import picture_like
from vsparagon.runtime.backends.base import cpu_onnx_file
from vsparagon.runtime.graph_rewrite import (
    merge_depthwise_branches,
    nearest_as_gather,
    rewrite_for_cpu,
    rms_as_reduce_l2,
    split_convs,
)
from vsparagon.runtime.source import resolve

REPO = Path(__file__).resolve().parents[2]


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("shape", [(1, 3, 37, 53), (2, 3, 16, 24), (1, 3, 1, 1)])
def test_rewritten_tiny_computes_the_same(tiny_onnx, shape, runtime):
    given = onnx.load(tiny_onnx)
    rewritten, report = rewrite_for_cpu(given, runtime)
    onnx.checker.check_model(rewritten, full_check=True)
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    want = run(given, x)
    got = run(rewritten, x)
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 1e-5
    # tiny is 3 groups of 3 blocks, each with one context split, one FFN split and one RMSNorm
    assert (report.split_convs, report.merged_branches, report.reduce_l2, report.nearest) == (9, 9, 9, 1)
    assert "Split" in ops(given)
    kept = [n for n in rewritten.graph.node if n.op_type == "Split"]
    if runtime == "onnxruntime":
        assert not kept
    else:  # one split per context, into block-aligned halves: identity + square, the two bands
        assert len(kept) == 9
        assert all(list(numpy_helper.to_array(_initializer(rewritten, n.input[1]))) == [16, 16] for n in kept)
    assert "Pow" not in ops(rewritten)
    assert "Expand" not in ops(rewritten)
    assert ops(rewritten).count("ReduceL2") == 9


def _initializer(model: onnx.ModelProto, name: str) -> onnx.TensorProto:
    return next(t for t in model.graph.initializer if t.name == name)


def test_openvino_runs_its_graph_to_the_same_values(tiny_onnx):
    import openvino as ov

    given = onnx.load(tiny_onnx)
    rewritten, _ = rewrite_for_cpu(given, "openvino")
    x = np.random.default_rng(7).random((1, 3, 40, 56), dtype=np.float32)
    core = ov.Core()
    compiled = core.compile_model(
        core.read_model(rewritten.SerializeToString(), b""), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )
    got = compiled.create_infer_request().infer({0: x})[0]
    assert np.abs(got - run(given, x)).max() < 1e-5


def test_unknown_runtime_is_refused(tiny_onnx):
    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'"):
        rewrite_for_cpu(onnx.load(tiny_onnx), "tensorrt")


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
@pytest.mark.parametrize(
    "name", ["paragonsr_tiny_video_x2.onnx", "paragonsr_tiny_x4.onnx", "paragonsr_tiny_x2_fp16.onnx"]
)
def test_rewritten_shipped_models_compute_the_same(name, runtime):
    given = onnx.load(str(REPO / "models" / name))
    rewritten, report = rewrite_for_cpu(given, runtime)
    assert report.changed
    assert report.nearest == 1
    assert report.reduce_l2 == 9
    assert ("Split" in ops(rewritten)) == (runtime == "openvino")
    half = "fp16" in name
    # trained models amplify per-pixel noise without bound (models/README.md): compare on a picture
    picture = picture_like(1, 24, 40, generator=torch.Generator().manual_seed(1)).numpy()
    x = picture.astype(np.float16 if half else np.float32)
    want, got = run(given, x).astype(np.float32), run(rewritten, x).astype(np.float32)
    assert np.abs(got - want).max() < (4e-3 if half else 1e-5)
    # the original is untouched (the rewrite returns a new graph)
    assert "Split" in ops(given)


def test_unused_split_sizes_are_dropped(tiny_onnx):
    rewritten, _ = rewrite_for_cpu(onnx.load(tiny_onnx))
    used = {name for node in rewritten.graph.node for name in node.input}
    assert all(t.name in used for t in rewritten.graph.initializer)
    assert all(n.output[0] in used for n in rewritten.graph.node if n.op_type == "Constant")


# ------------------------------------------------------------ small graphs, one pattern each


def _tensor(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(value.astype(np.float32), name)


def branch_graph(
    *,
    sizes=(2, 2, 4),
    kernels=((3, 3), (1, 5)),
    strides=(1, 1),
    pads=None,
    concat_order=None,
    axis=1,
    opset=17,
    extra_output=None,
    group=None,
) -> onnx.ModelProto:
    """x -> Split(sizes) -> [identity, depthwise conv per kernel...] -> Concat -> y."""
    rng = np.random.default_rng(2)
    channels = sum(sizes)
    parts = [f"p{i}" for i in range(len(sizes))]
    nodes, inits = [], []
    if opset >= 13:
        inits.append(numpy_helper.from_array(np.array(sizes, np.int64), "sizes"))
        nodes.append(helper.make_node("Split", ["x", "sizes"], parts, axis=axis))
    else:
        nodes.append(helper.make_node("Split", ["x"], parts, axis=axis, split=list(sizes)))
    joined = [parts[0]]
    for i, (kh, kw) in enumerate(kernels, start=1):
        c = sizes[i]
        inits += [_tensor(f"w{i}", rng.normal(size=(c, 1, kh, kw))), _tensor(f"b{i}", rng.normal(size=c))]
        pad = pads if pads is not None else [kh // 2, kw // 2, kh // 2, kw // 2]
        nodes.append(
            helper.make_node(
                "Conv",
                [parts[i], f"w{i}", f"b{i}"],
                [f"c{i}"],
                group=group or c,
                kernel_shape=[kh, kw],
                pads=pad,
                strides=list(strides),
            )
        )
        joined.append(f"c{i}")
    if concat_order:
        joined = [joined[i] for i in concat_order]
    nodes.append(helper.make_node("Concat", joined, ["y"], axis=1))
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if extra_output:
        outputs.append(helper.make_tensor_value_info(extra_output, TensorProto.FLOAT, None))
    graph = helper.make_graph(
        nodes, "branches", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 9, 11])], outputs, inits
    )
    return as_model(graph, opset)


@pytest.mark.parametrize("opset", [11, 17])
def test_depthwise_branches_merge_exactly(opset):
    given = branch_graph(opset=opset)
    rewritten, count = merge_depthwise_branches(given)
    assert count == 1
    assert ops(rewritten) == ["Conv", "Conv", "Add"]
    x = np.random.default_rng(3).normal(size=(1, 8, 9, 11)).astype(np.float32)
    assert np.abs(run(rewritten, x) - run(given, x)).max() < 1e-5


def test_shared_kernel_shapes_share_one_conv():
    given = branch_graph(sizes=(2, 2, 2, 2), kernels=((3, 3), (3, 3), (3, 3)))
    rewritten, count = merge_depthwise_branches(given)
    assert count == 1
    assert ops(rewritten) == ["Conv"]
    x = np.random.default_rng(4).normal(size=(1, 8, 9, 11)).astype(np.float32)
    assert np.abs(run(rewritten, x) - run(given, x)).max() < 1e-5


@pytest.mark.parametrize(
    "change",
    [
        {"strides": (2, 2)},
        {"kernels": ((3, 3), (2, 2)), "pads": [1, 1, 0, 0]},
        {"pads": [0, 0, 0, 0]},
        {"concat_order": [1, 0, 2]},
        {"axis": 2},
        {"extra_output": "c1"},
        {"group": 1, "sizes": (2, 2, 4), "kernels": ((3, 3),)},
    ],
    ids=["strided", "even-kernel", "valid-padding", "reordered", "not-channels", "branch-is-output", "not-depthwise"],
)
def test_graphs_outside_the_pattern_are_left_alone(change):
    given = branch_graph(**change)
    rewritten, count = merge_depthwise_branches(given)
    assert count == 0
    assert rewritten is given


def test_branches_merge_in_halves_for_openvino():
    given = branch_graph(sizes=(2, 2, 2, 2), kernels=((3, 3), (1, 5), (5, 1)))
    rewritten, count = merge_depthwise_branches(given, parts=2)
    assert count == 1
    # identity + square in one 3x3 over 4 channels; the two bands in a 1x5 and a 5x1 over the other 4, summed
    assert ops(rewritten) == ["Split", "Conv", "Conv", "Conv", "Add", "Concat"]
    widths = [numpy_helper.to_array(_initializer(rewritten, rewritten.graph.node[0].input[1])).tolist()]
    assert widths == [[4, 4]]
    groups = [helper.get_attribute_value(a) for n in rewritten.graph.node for a in n.attribute if a.name == "group"]
    assert groups == [4, 4, 4]
    x = np.random.default_rng(8).normal(size=(1, 8, 9, 11)).astype(np.float32)
    assert np.abs(run(rewritten, x) - run(given, x)).max() < 1e-5


@pytest.mark.parametrize(("sizes", "widths"), [((2, 2, 2, 2), [4, 4]), ((4, 1, 1, 2), [4, 4]), ((1, 1, 6), [2, 6])])
def test_halves_are_cut_at_the_branch_edge_nearest_the_middle(sizes, widths):
    kernels = [(3, 3), (1, 5), (5, 1)][: len(sizes) - 1]
    given = branch_graph(sizes=sizes, kernels=tuple(kernels), opset=11)
    rewritten, count = merge_depthwise_branches(given, parts=2)
    assert count == 1
    split = rewritten.graph.node[0]
    assert split.op_type == "Split"
    assert list(next(a for a in split.attribute if a.name == "split").ints) == widths
    x = np.random.default_rng(9).normal(size=(1, sum(sizes), 9, 11)).astype(np.float32)
    assert np.abs(run(rewritten, x) - run(given, x)).max() < 1e-5


def rms_graph(*, channels_known=True, exponent=2.0, axes=(1,), half=False) -> onnx.ModelProto:
    """x -> y = x / sqrt(mean(x^2 over axes) + eps) (the RMSNorm of a ParagonSR block); ``half``: all float16."""
    dtype = np.float16 if half else np.float32
    inits = [
        numpy_helper.from_array(np.array(exponent, dtype), "two"),
        numpy_helper.from_array(np.array(1e-6, dtype), "eps"),
    ]
    nodes = [
        helper.make_node("Pow", ["x", "two"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["mean"], axes=list(axes), keepdims=1),
        helper.make_node("Add", ["mean", "eps"], ["me"]),
        helper.make_node("Sqrt", ["me"], ["rms"]),
        helper.make_node("Div", ["x", "rms"], ["y"]),
    ]
    shape = [1, 6, 5, 7] if channels_known else [1, "c", 5, 7]
    return one_input_model(nodes, inits, shape, TensorProto.FLOAT16 if half else TensorProto.FLOAT)


def one_input_model(nodes: list, inits: list, shape: list, elem: int = TensorProto.FLOAT) -> onnx.ModelProto:
    """An opset-17 model of ``nodes`` from input ``x`` of ``shape`` to output ``y``, both of type ``elem``."""
    x = helper.make_tensor_value_info("x", elem, shape)
    y = helper.make_tensor_value_info("y", elem, None)
    return as_model(helper.make_graph(nodes, "graph", [x], [y], inits))


def as_model(graph: onnx.GraphProto, opset: int = 17) -> onnx.ModelProto:
    """``graph`` as a model of the default domain's ``opset`` (IR version 8, which ONNX Runtime reads)."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def test_rms_mean_square_becomes_reduce_l2():
    given = rms_graph()
    rewritten, count = rms_as_reduce_l2(given)
    assert count == 1
    assert "Pow" not in ops(rewritten)
    assert "ReduceL2" in ops(rewritten)
    x = np.random.default_rng(10).normal(size=(1, 6, 5, 7)).astype(np.float32) * 3
    assert np.abs(run(rewritten, x) - run(given, x)).max() < 1e-5


def test_rms_in_float16_stays_finite_where_the_mean_does():
    # rms 150: the sum of squares (135,000) is past float16's 65,504, the mean (22,500) is not
    given = rms_graph(half=True)
    rewritten, count = rms_as_reduce_l2(given)
    assert count == 1
    x = np.full((1, 6, 5, 7), 150, np.float16)
    want, got = run(given, x), run(rewritten, x)
    assert np.isfinite(got).all()
    assert np.abs(got.astype(np.float32) - want.astype(np.float32)).max() < 1e-2


@pytest.mark.parametrize(
    "change",
    [{"channels_known": False}, {"exponent": 3.0}, {"axes": (2,)}],
    ids=["channels-unknown", "cube", "not-channels"],
)
def test_other_means_are_left_alone(change):
    given = rms_graph(**change)
    rewritten, count = rms_as_reduce_l2(given)
    assert count == 0
    assert rewritten is given


def enlargement_graph(*, axes=(3, 5), scale=2) -> onnx.ModelProto:
    """y = DepthToSpace(conv(x), s) + x repeated s x s (Unsqueeze -> Expand -> Reshape; ``axes`` (3, 5): nearest)."""
    rng = np.random.default_rng(11)
    inits = [
        _tensor("w", rng.normal(size=(3 * scale * scale, 3, 3, 3))),
        numpy_helper.from_array(np.array(axes, np.int64), "axes"),
        numpy_helper.from_array(np.array([1, 1, 1, 1, 1, 1], np.int64), "ones"),
        numpy_helper.from_array(np.array([0, 0, 1, 1, 1, 1], np.int64), "where"),
        numpy_helper.from_array(np.array([1, 3, 6 * scale, 5 * scale], np.int64), "big"),
    ]
    reps = np.ones(6, np.int64)
    reps[list(axes)] = scale
    inits.append(numpy_helper.from_array(reps, "reps"))
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("DepthToSpace", ["c"], ["d"], blocksize=scale, mode="CRD"),
        helper.make_node("Unsqueeze", ["x", "axes"], ["u"]),
        helper.make_node("Expand", ["u", "reps"], ["e"]),
        helper.make_node("Reshape", ["e", "big"], ["n"]),
        helper.make_node("Add", ["d", "n"], ["y"]),
    ]
    return one_input_model(nodes, inits, [1, 3, 6, 5])


def test_nearest_enlargement_becomes_gather_and_shuffle():
    given = enlargement_graph()
    rewritten, count = nearest_as_gather(given)
    assert count == 1
    assert "Expand" not in ops(rewritten)
    assert ops(rewritten).count("DepthToSpace") == 2
    x = np.random.default_rng(12).random((1, 3, 6, 5), dtype=np.float32)
    assert np.array_equal(run(rewritten, x), run(given, x))


def test_an_enlargement_that_is_not_nearest_is_left_alone():
    # repeats along (2, 4): the input tiled, not each pixel repeated
    given = enlargement_graph(axes=(2, 4))
    rewritten, count = nearest_as_gather(given)
    assert count == 0
    assert rewritten is given


def conv_split_graph(*, group=1, reread=False, dynamic_sizes=False, bias_input=False) -> onnx.ModelProto:
    """x -> Conv(8 -> 6) -> Split([2, 4]) -> two outputs."""
    rng = np.random.default_rng(5)
    inits = [_tensor("w", rng.normal(size=(6, 8 // group, 3, 3)))]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], group=group, kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 7, 5])]
    if bias_input:  # a bias fed at run time: slicing it is not possible
        inputs.append(helper.make_tensor_value_info("b", TensorProto.FLOAT, [6]))
    else:
        inits.append(_tensor("b", rng.normal(size=6)))
    if dynamic_sizes:
        inputs.append(helper.make_tensor_value_info("sizes", TensorProto.INT64, [2]))
    else:
        inits.append(numpy_helper.from_array(np.array([2, 4], np.int64), "sizes"))
    nodes.append(helper.make_node("Split", ["c", "sizes"], ["s0", "s1"], axis=1))
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("s0", "s1")]
    if reread:
        nodes.append(helper.make_node("Relu", ["c"], ["r"]))
        outputs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, None))
    return as_model(helper.make_graph(nodes, "conv_split", inputs, outputs, inits))


def test_a_split_conv_becomes_one_conv_per_part():
    given = conv_split_graph()
    rewritten, count = split_convs(given)
    assert count == 1
    assert ops(rewritten) == ["Conv", "Conv"]
    x = np.random.default_rng(6).normal(size=(1, 8, 7, 5)).astype(np.float32)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    a = ort.InferenceSession(given.SerializeToString(), options).run(None, {"x": x})
    b = ort.InferenceSession(rewritten.SerializeToString(), options).run(None, {"x": x})
    for want, got in zip(a, b, strict=True):
        assert got.shape == want.shape
        assert np.abs(got - want).max() < 1e-5


@pytest.mark.parametrize("change", [{"group": 2}, {"reread": True}, {"dynamic_sizes": True}, {"bias_input": True}])
def test_conv_splits_outside_the_pattern_are_left_alone(change):
    given = conv_split_graph(**change)
    rewritten, count = split_convs(given)
    assert count == 0
    assert rewritten is given


# ------------------------------------------------------------ what the CPU backends load


def test_cpu_backends_load_a_cached_rewrite(tiny_onnx, tmp_path, monkeypatch):
    monkeypatch.setenv("VSPARAGON_CACHE", str(tmp_path))
    source = resolve(variant="tiny", scale=2, model=tiny_onnx)
    path, fp16 = cpu_onnx_file(source, fp16=False)
    assert not fp16
    assert path.parent == tmp_path / "onnx"
    assert path.name.endswith("-fp32-cpu2.onnx")
    assert "Split" not in ops(onnx.load(str(path)))
    ov_path, _ = cpu_onnx_file(source, fp16=False, runtime="openvino")
    assert ov_path.name.endswith("-fp32-ov2.onnx")
    assert ops(onnx.load(str(ov_path))).count("Split") == 9
    stamp = path.stat().st_mtime_ns
    again, _ = cpu_onnx_file(source, fp16=False)
    assert again == path
    assert path.stat().st_mtime_ns == stamp


def test_the_rewrite_can_be_turned_off(tiny_onnx, tmp_path, monkeypatch):
    monkeypatch.setenv("VSPARAGON_CACHE", str(tmp_path))
    monkeypatch.setenv("VSPARAGON_GRAPH_REWRITE", "0")
    source = resolve(variant="tiny", scale=2, model=tiny_onnx)
    assert cpu_onnx_file(source, fp16=False)[0] == Path(tiny_onnx)


def test_an_unwritable_cache_runs_the_graph_as_given(tiny_onnx, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("VSPARAGON_CACHE", str(blocker))
    source = resolve(variant="tiny", scale=2, model=tiny_onnx)
    assert cpu_onnx_file(source, fp16=False)[0] == Path(tiny_onnx)
    err = capsys.readouterr().err
    assert "running tiny_x2.onnx as given" in err
    assert "cannot cache" in err
