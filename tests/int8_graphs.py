"""Which products of an int8 export int8 quantization reached, read from the saved graph
(the tests of the embedder's and the reranker's int8 recipes share it)."""

from __future__ import annotations

from pathlib import Path


def int8_products(export: Path, backend: str) -> dict[str, bool]:
    """Each MatMul of an int8 export, by dotted name (ONNX's slashes as dots): whether
    it runs at int8 (its input comes through a FakeQuantize in OpenVINO, a
    DequantizeLinear in ONNX)."""
    found: dict[str, bool] = {}
    if backend == "openvino":
        import openvino as ov

        for op in ov.Core().read_model(str(export / "model.xml")).get_ordered_ops():
            if op.get_type_name() == "MatMul":
                source = op.input_value(0).get_node().get_type_name()
                found[op.get_friendly_name()] = source == "FakeQuantize"
        return found
    import onnx

    graph = onnx.load(str(export / "model.onnx")).graph
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    for node in graph.node:
        if node.op_type == "MatMul":
            found[node.name.replace("/", ".")] = bool(dequantized.intersection(node.input))
    return found
