"""The BERT encoder as an ONNX Runtime graph, built from the same safetensors weights (no PyTorch,
no export step): embeddings, `layers` transformer layers, the last hidden states out. Mean
pooling and normalisation stay in NumPy (backends/bert.py).

Why: on 2 cores it embeds faster than sentence-transformers on PyTorch and than the NumPy encoder
(long inputs gain most), with the same vectors to 3e-7 (bench/embedding_engines.py; docs/architecture.md
has the figures by CPU and what was not chosen).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["build_graph", "quantized", "OnnxBert"]

_OPSET = 17
# build_graph's layer norms stay primitive ops (see its layer_norm): these passes would fuse them back.
_UNFUSED = ["LayerNormFusion", "SimplifiedLayerNormFusion", "SkipLayerNormFusion"]


def build_graph(
    w: dict[str, np.ndarray], hidden: int, heads: int, layers: int, eps: float, *, fused_norms: bool = False
) -> bytes:
    """The serialised ModelProto; `w` as backends/bert.py prepares it ((in, out) dense weights, fused QKV).
    Each layer is ONNX Runtime's fused Attention (QKV product, masked softmax, context; the
    `com.microsoft` domain), the dense products, BiasGelu (exact erf), and layer norms written as
    primitive ops: ONNX Runtime's LayerNormalization and SkipLayerNormalization kernels are slower
    than the few ops they stand for (bench/embedding_batches.py compares both; docs/architecture.md
    has the figures). `fused_norms` builds those kernels instead, for that bench."""
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    inits: list[Any] = []
    named: set[str] = set()
    ms = "com.microsoft"

    def weight(name: str, value: np.ndarray | None = None) -> str:
        if name not in named:
            named.add(name)
            inits.append(numpy_helper.from_array(np.ascontiguousarray(w[name] if value is None else value), name))
        return name

    def node(op: str, inputs: list[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def matmul(x: str, name: str, out: str) -> str:
        return node("MatMul", [x, weight(name + ".weight")], out)

    def layer_norm(x: str, norm: str, out: str) -> str:
        """LayerNorm over the last axis."""
        if fused_norms:
            return node("LayerNormalization", [x, weight(norm + ".weight"), weight(norm + ".bias")], out, axis=-1,
                        epsilon=eps)  # fmt: skip
        d = node("Sub", [x, node("ReduceMean", [x], f"{out}.mean", axes=[-1])], f"{out}.centred")
        var = node("ReduceMean", [node("Mul", [d, d], f"{out}.sq")], f"{out}.var", axes=[-1])
        sd = node("Sqrt", [node("Add", [var, weight("eps", np.array(eps, dtype=np.float32))], f"{out}.vareps")],
                  f"{out}.sd")  # fmt: skip
        scaled = node("Mul", [node("Div", [d, sd], f"{out}.normed"), weight(norm + ".weight")], f"{out}.scaled")
        return node("Add", [scaled, weight(norm + ".bias")], out)

    def add_norm(x: str, residual: str, dense: str, norm: str, out: str) -> str:
        """LayerNorm(x + dense bias + residual)."""
        if fused_norms:
            inputs = [x, residual, weight(norm + ".weight"), weight(norm + ".bias"), weight(dense + ".bias")]
            return node("SkipLayerNormalization", inputs, out, domain=ms, epsilon=eps)
        summed = node("Add", [node("Add", [x, weight(dense + ".bias")], f"{out}.biased"), residual], f"{out}.sum")
        return layer_norm(summed, norm, out)

    # Embeddings: words + positions (the first T rows) + token type 0, normalised.
    words = node("Gather", [weight("embeddings.word_embeddings.weight"), "input_ids"], "words")
    length = node("Slice", [node("Shape", ["input_ids"], "shape"), weight("one", np.array([1])),
                            weight("two", np.array([2]))], "length")  # fmt: skip
    positions = node("Slice", [weight("embeddings.position_embeddings.weight"), weight("zero", np.array([0])), length,
                               weight("axis0", np.array([0]))], "positions")  # fmt: skip
    typed = node("Add", [positions, weight("type0", w["embeddings.token_type_embeddings.weight"][0])], "typed")
    x = layer_norm(node("Add", [words, typed], "embedded"), "embeddings.LayerNorm", "emb")
    mask = node("Cast", ["attention_mask"], "mask", to=TensorProto.INT32)
    for i in range(layers):
        p = f"encoder.layer.{i}."
        context = node("Attention", [x, weight(p + "qkv.weight"), weight(p + "qkv.bias"), mask], f"{p}ctx",
                       domain=ms, num_heads=heads)  # fmt: skip
        attended = matmul(context, p + "attention.output.dense", f"{p}ao")
        x = add_norm(attended, x, p + "attention.output.dense", p + "attention.output.LayerNorm", f"{p}norm1")
        inner = node("BiasGelu", [matmul(x, p + "intermediate.dense", f"{p}in"), weight(p + "intermediate.dense.bias")],
                     f"{p}gelu", domain=ms)  # fmt: skip
        out = matmul(inner, p + "output.dense", f"{p}out")
        x = add_norm(out, x, p + "output.dense", p + "output.LayerNorm", f"{p}norm2" if i < layers - 1 else "hidden")
    graph = helper.make_graph(
        nodes, "bert",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["n", "t"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.FLOAT, ["n", "t"])],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["n", "t", hidden])],
        inits,
    )  # fmt: skip
    opsets = [helper.make_opsetid("", _OPSET), helper.make_opsetid(ms, 1)]
    return bytes(helper.make_model(graph, opset_imports=opsets, producer_name="homeport").SerializeToString())


def quantized(graph: bytes) -> bytes:
    """The graph with its dense and attention weights in int8 (per output channel) and activations
    quantized as they flow (ONNX Runtime's dynamic quantization: VNNI integer products on CPUs that
    have them). About 2x the fp32 graph on 400-token chunks here; the vectors move (cosine to the
    fp32 vector >= 0.996 on long chunks, >= 0.985 on short sentences). Opt-in:
    `engine.embedding_runtime: onnx-int8`."""
    import tempfile
    from pathlib import Path

    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="homeport-int8-") as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(graph)
        quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=True,
                         extra_options={"DefaultTensorType": TensorProto.FLOAT})  # fmt: skip
        return target.read_bytes()


class OnnxBert:
    """One ONNX Runtime session over the graph: (ids, mask) → hidden states."""

    def __init__(self, graph: bytes, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"],
                                             disabled_optimizers=_UNFUSED)

    def hidden(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        (out,) = self._session.run(["hidden"], {"input_ids": ids, "attention_mask": mask})
        return np.asarray(out)
