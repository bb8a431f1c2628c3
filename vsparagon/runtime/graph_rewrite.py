"""Exact rewrites of an ONNX graph that let CPU runtimes keep their blocked layout.

ONNX Runtime's CPU provider runs convolutions in a channel-blocked layout (NCHWc)
and converts back to plain NCHW around every node it has no blocked kernel for.
A channel ``Split`` is such a node, and ParagonSR has two per block: the context
splits its features into identity / square / horizontal / vertical branches, and
the gated FFN splits one 1x1 conv into gate and value. On tiny x2 those splits and
the 90 layout conversions around them take about a third of a frame. Two rewrites
remove every split, computing the same values:

* :func:`split_convs`: a ``Conv`` whose only consumer is a channel ``Split`` becomes
  one ``Conv`` per part (the weight rows sliced; no extra work).
* :func:`merge_depthwise_branches`: ``Split`` -> (identity or same-padded depthwise
  conv per part) -> ``Concat`` becomes one depthwise conv over all channels per
  kernel shape, summed (channels outside a shape get zero taps; identity channels
  a centre tap of 1). The outputs are exactly the branches'; the zero taps cost
  extra multiply-adds (about 5% of a tiny block), far less than the conversions.
  With ``parts=2`` (OpenVINO) the branches are merged within two halves instead
  (identity + square, the two bands), kept apart by one Split and one Concat:
  half the depthwise work, for two copies OpenVINO makes cheaply.

Two more rewrites take passes out of OpenVINO's programs (and cost ONNX Runtime nothing):

* :func:`rms_as_reduce_l2`: the RMSNorm's ``ReduceMean(Pow(x, 2))`` over channels as
  ``ReduceL2(x)^2 / C`` (float16: ``(ReduceL2(x) / sqrt(C))^2``), one reduction instead of a
  squaring pass and a reduction (the same value to float rounding: 4e-7 on tiny x2).
* :func:`nearest_as_gather`: the nearest-neighbour enlargement of the input that the
  output adds (``Reshape -> Expand -> Reshape``, which OpenVINO runs with a reference
  kernel) as ``Gather`` of each input channel ``s*s`` times and a ``DepthToSpace``;
  bit-identical, and it stays in float32 where OpenVINO computes the body in bf16.

The functions are pure (ModelProto in, new ModelProto out) and leave any graph
that does not match a pattern exactly unchanged. :func:`rewrite_for_cpu` applies
them for one runtime (:data:`RUNTIMES`); each backend loads its own rewritten file.
``VSPARAGON_GRAPH_REWRITE=0`` turns the rewrite off.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Bumped whenever a rewrite changes, so cached rewritten files are rebuilt.
REWRITE_VERSION = 2
#: The runtimes :func:`rewrite_for_cpu` writes a graph for; OpenVINO's merges the depthwise branches in halves.
RUNTIMES = ("onnxruntime", "openvino")
ENV_SWITCH = "VSPARAGON_GRAPH_REWRITE"


def rewrite_enabled() -> bool:
    """False when ``$VSPARAGON_GRAPH_REWRITE`` is ``0`` (or ``off``/``no``/``false``)."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "off", "no", "false")


@dataclass(frozen=True)
class RewriteReport:
    """What :func:`rewrite_for_cpu` changed."""

    split_convs: int
    """Conv -> Split pairs replaced by one conv per part."""
    merged_branches: int
    """Split -> depthwise branches -> Concat groups replaced by summed depthwise convs."""
    reduce_l2: int = 0
    """RMSNorm mean squares computed with ``ReduceL2``."""
    nearest: int = 0
    """Nearest-neighbour enlargements computed with ``Gather`` and ``DepthToSpace``."""

    @property
    def changed(self) -> bool:
        """True when the graph was rewritten at all."""
        return bool(self.split_convs or self.merged_branches or self.reduce_l2 or self.nearest)


def rewrite_for_cpu(model: Any, runtime: str = "onnxruntime") -> tuple[Any, RewriteReport]:
    """Every rewrite, in order, for ``runtime`` (one of :data:`RUNTIMES`); returns a new ModelProto and what changed.

    The choices per runtime are measured (docs/performance.md, "How the CPU backends get their speed"):
    ONNX Runtime loses to any Split, so its depthwise branches merge over all channels; OpenVINO
    copies a Split's halves cheaply and gains from half the depthwise work.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; one of {', '.join(RUNTIMES)}")
    model, convs = split_convs(model)
    model, branches = merge_depthwise_branches(model, parts=2 if runtime == "openvino" else 1)
    model, norms = rms_as_reduce_l2(model)
    model, nearest = nearest_as_gather(model)
    return model, RewriteReport(split_convs=convs, merged_branches=branches, reduce_l2=norms, nearest=nearest)


class _Graph:
    """Read-only indexes over a graph plus the edits collected for it."""

    def __init__(self, model: Any) -> None:
        from onnx import numpy_helper

        self.model = model
        self.graph = model.graph
        self.arrays: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        for node in self.graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.arrays[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.consumers: dict[str, list[Any]] = defaultdict(list)
        self.producer: dict[str, Any] = {}
        for node in self.graph.node:
            for name in node.input:
                self.consumers[name].append(node)
            for name in node.output:
                self.producer[name] = node
        self.outputs = {o.name for o in self.graph.output}
        self.names = set(self.arrays) | set(self.producer) | {i.name for i in self.graph.input}
        self.replaced: dict[int, list[Any]] = {}  # id(node) -> nodes that take its place ([] = removed)
        self.new_arrays: list[Any] = []
        self._serial = 0

    def fresh(self, base: str) -> str:
        """A tensor or node name not used anywhere in the graph."""
        while True:
            self._serial += 1
            name = f"{base}__cpu{self._serial}"
            if name not in self.names:
                self.names.add(name)
                return name

    def add_array(self, base: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.fresh(base)
        self.new_arrays.append(numpy_helper.from_array(value, name))
        return name

    def only_consumer(self, tensor: str) -> Any:
        """The single node reading ``tensor``, or None (several readers, or a graph output)."""
        readers = self.consumers.get(tensor, [])
        return readers[0] if len(readers) == 1 and tensor not in self.outputs else None

    def free(self, node: Any) -> bool:
        return id(node) not in self.replaced

    def build(self) -> Any:
        """A new ModelProto with the edits applied and unused initializers dropped."""
        import onnx

        out = onnx.ModelProto()
        out.CopyFrom(self.model)
        nodes = []
        for node in self.graph.node:
            nodes.extend(self.replaced.get(id(node), [node]))
        used = {name for node in nodes for name in node.input} | self.outputs
        nodes = [n for n in nodes if n.op_type != "Constant" or n.output[0] in used]  # e.g. a removed Split's sizes
        del out.graph.node[:]
        out.graph.node.extend(nodes)
        out.graph.initializer.extend(self.new_arrays)
        kept = [t for t in out.graph.initializer if t.name in used]
        del out.graph.initializer[:]
        out.graph.initializer.extend(kept)
        produced = {name for node in nodes for name in node.output}
        infos = [v for v in out.graph.value_info if v.name in produced]
        del out.graph.value_info[:]
        out.graph.value_info.extend(infos)
        return out


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _split_sizes(g: _Graph, node: Any) -> list[int] | None:
    """Constant sizes of a channel (axis 1) Split, or None."""
    attrs = _attrs(node)
    if attrs.get("axis", 0) != 1:
        return None
    sizes = g.arrays.get(node.input[1]) if len(node.input) > 1 and node.input[1] else attrs.get("split")
    if sizes is None or len(sizes) != len(node.output):
        return None
    return [int(s) for s in np.asarray(sizes).reshape(-1)]


def _conv_bias(g: _Graph, conv: Any) -> tuple[bool, np.ndarray | None]:
    """(usable, bias): a constant bias, or none at all; a bias computed at run time is not usable."""
    if len(conv.input) < 3 or not conv.input[2]:
        return True, None
    bias = g.arrays.get(conv.input[2])
    return bias is not None, bias


def _channel_splits(g: _Graph) -> Iterator[tuple[Any, list[int]]]:
    """(node, sizes) of each not-yet-rewritten channel Split with constant sizes, in graph order."""
    for node in g.graph.node:
        if node.op_type == "Split" and g.free(node):
            sizes = _split_sizes(g, node)
            if sizes is not None:
                yield node, sizes


def split_convs(model: Any) -> tuple[Any, int]:
    """Replace each ``Conv`` (group 1, constant weights) read only by a channel ``Split`` with one conv per part."""
    from onnx import helper

    g = _Graph(model)
    count = 0
    for split, sizes in _channel_splits(g):
        conv = g.producer.get(split.input[0])
        if conv is None or conv.op_type != "Conv" or not g.free(conv):
            continue
        if g.only_consumer(conv.output[0]) is not split:
            continue
        attrs = _attrs(conv)
        weight = g.arrays.get(conv.input[1])
        usable, bias = _conv_bias(g, conv)
        if not usable or weight is None or attrs.get("group", 1) != 1 or sum(sizes) != weight.shape[0]:
            continue
        parts = []
        start = 0
        for size, output in zip(sizes, split.output, strict=True):
            inputs = [conv.input[0], g.add_array(conv.input[1], weight[start : start + size])]
            if bias is not None:
                inputs.append(g.add_array(conv.input[2], bias[start : start + size]))
            parts.append(helper.make_node("Conv", inputs, [output], name=g.fresh(conv.name or "Conv"), **attrs))
            start += size
        g.replaced[id(conv)] = []
        g.replaced[id(split)] = parts
        count += 1
    return (g.build(), count) if count else (model, 0)


@dataclass(frozen=True)
class _Branch:
    """One part of a split: its channel range and, unless it is an identity, its depthwise conv."""

    start: int
    size: int
    conv: Any | None = None
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    kernel: tuple[int, int] = (1, 1)


def _depthwise(g: _Graph, conv: Any, start: int, size: int) -> _Branch | None:
    """The branch for ``conv`` if it is a stride-1, dilation-1, same-padded odd-kernel depthwise conv."""
    attrs = _attrs(conv)
    weight = g.arrays.get(conv.input[1])
    if weight is None or weight.ndim != 4 or weight.shape[:2] != (size, 1) or attrs.get("group", 1) != size:
        return None
    kh, kw = (int(k) for k in attrs.get("kernel_shape", weight.shape[2:]))
    if (kh, kw) != weight.shape[2:] or kh % 2 == 0 or kw % 2 == 0:
        return None
    if list(attrs.get("strides", [1, 1])) != [1, 1] or list(attrs.get("dilations", [1, 1])) != [1, 1]:
        return None
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return None
    if list(attrs.get("pads", [0, 0, 0, 0])) != [kh // 2, kw // 2, kh // 2, kw // 2]:
        return None
    usable, bias = _conv_bias(g, conv)
    return _Branch(start, size, conv, weight, bias, (kh, kw)) if usable else None


def _branches(g: _Graph, split: Any, sizes: list[int]) -> tuple[list[_Branch], Any] | None:
    """The branches of a Split whose parts all meet again in one channel Concat, in order, or None."""
    branches: list[_Branch] = []
    concat = None
    start = 0
    for size, part in zip(sizes, split.output, strict=True):
        reader = g.only_consumer(part)
        if reader is None or not g.free(reader):
            return None
        if reader.op_type == "Concat":
            branch: _Branch | None = _Branch(start, size)
            joined_by = reader
        elif reader.op_type == "Conv" and reader.input[0] == part:
            branch = _depthwise(g, reader, start, size)
            joined_by = g.only_consumer(reader.output[0])
        else:
            return None
        if branch is None or joined_by is None or joined_by.op_type != "Concat":
            return None
        if concat is not None and joined_by is not concat:
            return None
        concat = joined_by
        branches.append(branch)
        start += size
    expected = [part if b.conv is None else b.conv.output[0] for b, part in zip(branches, split.output, strict=True)]
    if concat is None or _attrs(concat).get("axis") != 1 or list(concat.input) != expected:
        return None
    if all(b.conv is None for b in branches) or not g.free(concat):
        return None
    return branches, concat


def _in_parts(branches: list[_Branch], parts: int) -> list[list[_Branch]]:
    """``branches`` cut at the branch edges nearest to ``parts`` equal channel counts (fewer parts if they coincide)."""
    channels = branches[-1].start + branches[-1].size
    edges = [b.start for b in branches[1:]]
    cuts = sorted(
        {min(edges, key=lambda e: abs(e * parts - k * channels)) for k in range(1, parts)} if edges else set()
    )
    groups: list[list[_Branch]] = [[]]
    for b in branches:
        if cuts and b.start == cuts[0]:
            cuts.pop(0)
            groups.append([])
        groups[-1].append(b)
    return groups


def _summed_depthwise(g: _Graph, source: str, branches: list[_Branch], output: str) -> list[Any]:
    """Depthwise convs over the channels of ``branches`` (read from ``source``), one per kernel shape, summed
    into ``output``; identity channels get a centre tap of 1 in the first."""
    from onnx import helper

    offset = branches[0].start
    channels = sum(b.size for b in branches)
    convs = [b for b in branches if b.conv is not None]
    dtype = convs[0].weight.dtype if convs[0].weight is not None else np.float32
    kernels = list(dict.fromkeys(b.kernel for b in convs))  # first-seen order
    bias = np.zeros(channels, dtype)  # all branch biases, added once by the first conv
    for b in convs:
        if b.bias is not None:
            bias[b.start - offset : b.start - offset + b.size] = b.bias
    nodes = []
    total = None
    for index, (kh, kw) in enumerate(kernels):
        weight = np.zeros((channels, 1, kh, kw), dtype)
        for b in branches:
            at = slice(b.start - offset, b.start - offset + b.size)
            if b.conv is None and index == 0:
                weight[at, 0, kh // 2, kw // 2] = 1  # identity: centre tap
            elif b.conv is not None and b.kernel == (kh, kw):
                weight[at] = b.weight
        last = index == len(kernels) - 1
        out = output if last and total is None else g.fresh("depthwise")
        inputs = [source, g.add_array("depthwise_w", weight)]
        if index == 0:
            inputs.append(g.add_array("depthwise_b", bias))
        nodes.append(
            helper.make_node(
                "Conv",
                inputs,
                [out],
                name=g.fresh("DepthwiseMerged"),
                group=channels,
                kernel_shape=[kh, kw],
                pads=[kh // 2, kw // 2, kh // 2, kw // 2],
                strides=[1, 1],
                dilations=[1, 1],
            )
        )
        if total is not None:
            summed = output if last else g.fresh("depthwise_sum")
            nodes.append(helper.make_node("Add", [out, total], [summed], name=g.fresh("DepthwiseSum")))
            out = summed
        total = out
    return nodes


def merge_depthwise_branches(model: Any, *, parts: int = 1) -> tuple[Any, int]:
    """Replace Split -> per-part depthwise convs / identities -> Concat with summed depthwise convs.

    ``parts=1``: summed full-width convs, no Split left. ``parts=2``: the branches cut into two
    runs of about equal width (ParagonSR: identity + square, the two bands), each merged on its
    own channels, between one Split and one Concat.
    """
    from onnx import helper

    g = _Graph(model)
    count = 0
    for split, sizes in _channel_splits(g):
        found = _branches(g, split, sizes)
        if found is None:
            continue
        branches, concat = found
        groups = _in_parts(branches, parts)
        if len(groups) == 1:
            nodes = _summed_depthwise(g, split.input[0], branches, concat.output[0])
        else:
            widths = [sum(b.size for b in group) for group in groups]
            names = [g.fresh("context_part") for _ in groups]
            inputs, sizes_attr = [split.input[0]], dict[str, Any]()
            if len(split.input) > 1 and split.input[1]:  # opset 13+: sizes as an input
                inputs.append(g.add_array("context_sizes", np.array(widths, np.int64)))
            else:
                sizes_attr = {"split": widths}
            nodes = [helper.make_node("Split", inputs, names, axis=1, name=g.fresh("ContextSplit"), **sizes_attr)]
            joined = []
            for group, name in zip(groups, names, strict=True):
                if all(b.conv is None for b in group):
                    joined.append(name)  # identities only: the part passes as it is
                    continue
                out = g.fresh("context_out")
                nodes += _summed_depthwise(g, name, group, out)
                joined.append(out)
            nodes.append(helper.make_node("Concat", joined, [concat.output[0]], axis=1, name=g.fresh("ContextConcat")))
        g.replaced[id(split)] = nodes
        g.replaced[id(concat)] = []
        for b in branches:
            if b.conv is not None:
                g.replaced[id(b.conv)] = []
        count += 1
    return (g.build(), count) if count else (model, 0)


def _channels_of(model: Any) -> dict[str, int]:
    """Static channel counts (axis 1) of the graph's 4D tensors, by ONNX shape inference; {} if it fails."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        return {}
    found = {}
    for info in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        dims = info.type.tensor_type.shape.dim
        if len(dims) == 4 and dims[1].HasField("dim_value"):
            found[info.name] = int(dims[1].dim_value)
    return found


def rms_as_reduce_l2(model: Any) -> tuple[Any, int]:
    """Replace ``ReduceMean(Pow(x, 2), axes=[1], keepdims=1)`` with ``ReduceL2(x)^2 / C`` (C static; in float16
    ``(ReduceL2(x) / sqrt(C))^2``, which overflows only where the mean itself would)."""
    from onnx import helper

    g = _Graph(model)
    channels = None
    count = 0
    for node in g.graph.node:
        exponent = g.arrays.get(node.input[1]) if node.op_type == "Pow" and g.free(node) else None
        if exponent is None or exponent.size != 1 or float(exponent.reshape(-1)[0]) != 2.0:
            continue
        mean = g.only_consumer(node.output[0])
        if mean is None or mean.op_type != "ReduceMean" or not g.free(mean):
            continue
        attrs = _attrs(mean)
        axes = g.arrays.get(mean.input[1]) if len(mean.input) > 1 and mean.input[1] else attrs.get("axes")
        if axes is None or [int(a) for a in np.asarray(axes).reshape(-1)] != [1] or attrs.get("keepdims", 1) != 1:
            continue
        channels = _channels_of(model) if channels is None else channels
        width = channels.get(node.input[0])
        if not width:
            continue
        l2, part = g.fresh("l2"), g.fresh("rms_part")
        dtype = exponent.dtype
        g.replaced[id(node)] = []
        reduce = helper.make_node("ReduceL2", [node.input[0], *mean.input[1:]], [l2], name=g.fresh("RmsL2"), **attrs)
        if dtype == np.float16:  # the root mean square, then squared: it overflows only where the mean would
            factor = g.add_array("rms_inv_sqrt_c", np.array(width**-0.5, dtype))
            first, second = [l2, factor], [part, part]
        else:  # the sum of squares, then divided by C (exact for a power of two; OpenVINO's bf16 keeps 8-bit
            # output within 1 code value of fp32 on the held-out photos this way, not with the form above)
            factor = g.add_array("rms_inv_c", np.array(1 / width, dtype))
            first, second = [l2, l2], [part, factor]
        nodes = [
            helper.make_node("Mul", first, [part], name=g.fresh("RmsSquare")),
            helper.make_node("Mul", second, list(mean.output), name=g.fresh("RmsMean")),
        ]
        g.replaced[id(mean)] = [reduce, *nodes]
        count += 1
    return (g.build(), count) if count else (model, 0)


def _upstream(g: _Graph, tensor: str) -> list[Any] | None:
    """The nodes ``tensor`` is computed from, in graph order, if it depends only on the graph input and constants."""
    wanted, seen = [tensor], set()
    outside = {i.name for i in g.graph.input} | {t.name for t in g.graph.initializer}
    while wanted:
        name = wanted.pop()
        if name in seen or not name or name in outside:
            continue
        producer = g.producer.get(name)
        if producer is None or not g.free(producer):
            return None
        seen.add(name)
        wanted.extend(producer.input)
    order = {id(n): i for i, n in enumerate(g.graph.node)}
    nodes = {id(g.producer[name]): g.producer[name] for name in seen}
    return sorted(nodes.values(), key=lambda n: order[id(n)])


def _is_nearest(g: _Graph, tensor: str, nodes: list[Any], scale: int, channels: int) -> bool:
    """Whether ``tensor`` (computed by ``nodes`` from the graph input) is the input enlarged ``scale`` times
    by repetition, checked by running those nodes on a small input with ONNX's reference evaluator."""
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    source = g.graph.input[0]
    dtype = {TensorProto.FLOAT: np.float32, TensorProto.FLOAT16: np.float16}.get(source.type.tensor_type.elem_type)
    if dtype is None:
        return False
    used = {name for n in nodes for name in n.input}
    graph = helper.make_graph(
        nodes,
        "nearest",
        [source],
        [helper.make_tensor_value_info(tensor, source.type.tensor_type.elem_type, None)],
        [t for t in g.graph.initializer if t.name in used] + [t for t in g.new_arrays if t.name in used],
    )
    probe = helper.make_model(graph, opset_imports=list(g.model.opset_import), ir_version=g.model.ir_version)
    dims = zip(source.type.tensor_type.shape.dim, (2, channels, 3, 5), strict=True)
    shape = [d.dim_value if d.HasField("dim_value") else size for d, size in dims]  # the input's static sizes kept
    x = np.random.default_rng(0).random(shape).astype(dtype)
    try:
        outputs: list[Any] = list(ReferenceEvaluator(probe).run(None, {source.name: x}))
        got = np.asarray(outputs[0])
    except Exception:
        return False
    want = x.repeat(scale, axis=2).repeat(scale, axis=3)
    return bool(got.shape == want.shape and np.array_equal(got, want))


def nearest_as_gather(model: Any) -> tuple[Any, int]:
    """Replace the output's ``Add(DepthToSpace(y, s, CRD), nearest(input))`` enlargement with
    ``DepthToSpace(Gather(input, each channel s*s times), s, CRD)``."""
    from onnx import helper

    g = _Graph(model)
    if len(g.graph.output) != 1 or len(g.graph.input) != 1:
        return model, 0
    add = g.producer.get(g.graph.output[0].name)
    if add is None or add.op_type != "Add":
        return model, 0
    dims = g.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not dims[1].HasField("dim_value"):
        return model, 0
    channels = int(dims[1].dim_value)
    for side in (0, 1):
        shuffle, other = g.producer.get(add.input[side]), add.input[1 - side]
        if shuffle is None or shuffle.op_type != "DepthToSpace":
            continue
        attrs = _attrs(shuffle)
        scale, mode = int(attrs.get("blocksize", 0)), attrs.get("mode", b"DCR")
        nodes = _upstream(g, other)
        if scale < 2 or mode not in (b"CRD", "CRD") or not nodes or any(n.op_type == "Conv" for n in nodes):
            continue
        inside = {id(n) for n in nodes}
        readers = [r for n in nodes for out in n.output if out != other for r in g.consumers.get(out, [])]
        if any(id(r) not in inside for r in readers) or g.only_consumer(other) is not add:
            continue  # the enlargement feeds something else too
        if not _is_nearest(g, other, nodes, scale, channels):
            continue
        repeated = g.fresh("nearest_channels")
        index = g.add_array("nearest_index", np.repeat(np.arange(channels, dtype=np.int64), scale * scale))
        producer = g.producer[other]
        for n in nodes:
            g.replaced[id(n)] = []
        g.replaced[id(producer)] = [
            helper.make_node(
                "Gather", [g.graph.input[0].name, index], [repeated], axis=1, name=g.fresh("NearestGather")
            ),
            helper.make_node(
                "DepthToSpace", [repeated], [other], blocksize=scale, mode="CRD", name=g.fresh("NearestShuffle")
            ),
        ]
        return g.build(), 1
    return model, 0
