"""float32 -> float16 conversion of an ONNX graph; needs `onnx` but not torch (export and runtime share it)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from vsparagon.errors import ExportError

#: Operator -> the input that ONNX requires to stay float32 (``Resize``'s and ``Upsample``'s scales).
FLOAT32_INPUTS = {"Resize": 2, "Upsample": 1}


def to_float16(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Turn every float32 tensor of a graph (weights, constants, inputs, outputs) into float16.

    The tensors of :data:`FLOAT32_INPUTS` stay float32 (a nearest-neighbour skip, as in Real-ESRGAN
    Compact, has a Resize).
    """
    graph = proto.graph
    keep = {
        node.input[FLOAT32_INPUTS[node.op_type]]
        for node in graph.node
        if node.op_type in FLOAT32_INPUTS and len(node.input) > FLOAT32_INPUTS[node.op_type]
    }

    def half(tensor: TensorProto) -> TensorProto:
        if tensor.data_type != TensorProto.FLOAT or tensor.name in keep:
            return tensor
        array = numpy_helper.to_array(tensor)
        if np.abs(array).max(initial=0.0) > np.finfo(np.float16).max:
            raise ExportError(f"weight {tensor.name!r} exceeds the float16 range; export without --fp16")
        return numpy_helper.from_array(array.astype(np.float16), tensor.name)

    converted = [half(t) for t in graph.initializer]
    del graph.initializer[:]
    graph.initializer.extend(converted)
    for node in graph.node:
        if keep.intersection(node.output):
            continue
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                attr.t.CopyFrom(half(attr.t))
            elif node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT and value.name not in keep:
            value.type.tensor_type.elem_type = TensorProto.FLOAT16
    return proto
