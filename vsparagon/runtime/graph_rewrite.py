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

The functions are pure (ModelProto in, new ModelProto out) and leave any graph
that does not match a pattern exactly unchanged. OpenVINO gains from the same
graph (its own layout logic also splits around ``Split``), so both CPU backends
load the rewritten file. ``VSPARAGON_GRAPH_REWRITE=0`` turns the rewrite off.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Bumped whenever a rewrite changes, so cached rewritten files are rebuilt.
REWRITE_VERSION = 1
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
    """Split -> depthwise branches -> Concat groups replaced by summed full-width depthwise convs."""

    @property
    def changed(self) -> bool:
        """True when the graph was rewritten at all."""
        return bool(self.split_convs or self.merged_branches)


def rewrite_for_cpu(model: Any) -> tuple[Any, RewriteReport]:
    """Both rewrites, in order; returns a new ModelProto and what changed."""
    model, convs = split_convs(model)
    model, branches = merge_depthwise_branches(model)
    return model, RewriteReport(split_convs=convs, merged_branches=branches)


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


def merge_depthwise_branches(model: Any) -> tuple[Any, int]:
    """Replace Split -> per-part depthwise convs / identities -> Concat with summed full-width depthwise convs."""
    from onnx import helper

    g = _Graph(model)
    count = 0
    for split, sizes in _channel_splits(g):
        found = _branches(g, split, sizes)
        if found is None:
            continue
        branches, concat = found
        channels = sum(sizes)
        convs = [b for b in branches if b.conv is not None]
        dtype = convs[0].weight.dtype if convs[0].weight is not None else np.float32
        kernels = list(dict.fromkeys(b.kernel for b in convs))  # first-seen order
        bias = np.zeros(channels, dtype)  # all branch biases, added once by the first conv
        for b in convs:
            if b.bias is not None:
                bias[b.start : b.start + b.size] = b.bias
        nodes = []
        total = None
        for index, (kh, kw) in enumerate(kernels):
            weight = np.zeros((channels, 1, kh, kw), dtype)
            for b in branches:
                if b.conv is None and index == 0:
                    weight[b.start : b.start + b.size, 0, kh // 2, kw // 2] = 1  # identity: centre tap
                elif b.conv is not None and b.kernel == (kh, kw):
                    weight[b.start : b.start + b.size] = b.weight
            last = index == len(kernels) - 1
            out = concat.output[0] if last and total is None else g.fresh("depthwise")
            inputs = [split.input[0], g.add_array("depthwise_w", weight)]
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
                summed = concat.output[0] if last else g.fresh("depthwise_sum")
                nodes.append(helper.make_node("Add", [out, total], [summed], name=g.fresh("DepthwiseSum")))
                out = summed
            total = out
        g.replaced[id(split)] = nodes
        g.replaced[id(concat)] = []
        for b in convs:
            g.replaced[id(b.conv)] = []
        count += 1
    return (g.build(), count) if count else (model, 0)
