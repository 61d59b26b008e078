"""Where the embedding encoder's time goes, by ONNX Runtime op, on a 400-token chunk (ingestion)
and a batch of 32 short sentences, in fp32 and int8; and what the CPU's products can do.

    .venv/bin/python bench/embedding_ops.py

ONNX Runtime's own profiler over 30 runs of the graph backends/bert_onnx.py builds (2 threads):
milliseconds per run by op type. Then one large MatMul (fp32) and MatMulInteger (int8 × uint8)
alone, in GFLOP/s and GOP/s: the ceiling the dense products can reach on these cores.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def _by_op(session_graph: bytes, ids: np.ndarray, runs: int = 30) -> tuple[float, Counter[str]]:
    import onnxruntime as ort

    from homeport.backends.bert_onnx import _UNFUSED

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.gettempdir()) / "homeport-embedding-ops")
    session = ort.InferenceSession(session_graph, options, providers=["CPUExecutionProvider"],
                                   disabled_optimizers=_UNFUSED)  # fmt: skip
    feed = {"input_ids": ids, "attention_mask": np.ones(ids.shape, dtype=np.float32)}
    for _ in range(runs):
        session.run(None, feed)
    trace = session.end_profiling()
    events = json.loads(Path(trace).read_text())
    os.remove(trace)
    by: Counter[str] = Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by[event["args"]["op_name"]] += event["dur"]
    return sum(by.values()) / runs / 1000, Counter({op: us / runs / 1000 for op, us in by.items()})


def _ceiling(op: str) -> float:
    import onnxruntime as ort
    from onnx import TensorProto, helper

    integer = op == "MatMulInteger"
    a_type, b_type = (TensorProto.UINT8, TensorProto.INT8) if integer else (TensorProto.FLOAT, TensorProto.FLOAT)
    graph = helper.make_graph(
        [helper.make_node(op, ["a", "b"], ["y"])], "g",
        [helper.make_tensor_value_info("a", a_type, [None, 384]),
         helper.make_tensor_value_info("b", b_type, [384, 1536])],
        [helper.make_tensor_value_info("y", TensorProto.INT32 if integer else TensorProto.FLOAT, [None, 1536])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    a = rng.integers(0, 100, (4096, 384)).astype(np.uint8 if integer else np.float32)
    b = rng.integers(-50, 50, (384, 1536)).astype(np.int8 if integer else np.float32)
    for _ in range(3):
        session.run(None, {"a": a, "b": b})
    began = time.perf_counter()
    for _ in range(20):
        session.run(None, {"a": a, "b": b})
    return 2 * 4096 * 384 * 1536 / ((time.perf_counter() - began) / 20) / 1e9


def main() -> None:
    from homeport.backends.bert import BertEncoder
    from homeport.backends.bert_onnx import build_graph, quantized
    from homeport.services.inference.registry import locate_weights
    from homeport.settings import DEFAULT_MODELS

    model_dir = locate_weights(next(m for m in DEFAULT_MODELS if m.id == "all-minilm-l6-v2"), Path("/nonexistent"))
    encoder = BertEncoder(model_dir, runtime="numpy")
    c = encoder.config
    fp32 = build_graph(encoder._w, c.hidden, c.heads, c.layers, c.eps)
    graphs = {"fp32": fp32, "int8": quantized(fp32)}
    rng = np.random.default_rng(0)
    shapes = {"one 400-token chunk": (1, 402), "32 sentences of 16 tokens": (32, 16)}
    for (shape_name, shape), (graph_name, graph) in ((s, g) for s in shapes.items() for g in graphs.items()):
        total, by = _by_op(graph, rng.integers(2000, 20000, shape).astype(np.int64))
        print(f"\n{graph_name}, {shape_name}: {total:.2f} ms a run\n")
        print("| op | ms | share |\n|---|---|---|")
        for op, ms in by.most_common(8):
            print(f"| {op} | {ms:.2f} | {ms / total:.0%} |")
    print(f"\nMatMul (fp32) 4096x384 by 384x1536: {_ceiling('MatMul'):.0f} GFLOP/s; "
          f"MatMulInteger (uint8 x int8): {_ceiling('MatMulInteger'):.0f} GOP/s")


if __name__ == "__main__":
    main()
