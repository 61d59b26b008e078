"""The issue's first embedding route, measured: all-MiniLM-L6-v2 on llama.cpp's BERT (through
llama-cpp-python, already a dependency) against Homeport's ONNX Runtime graph, on the same inputs.

    .venv/bin/pip install -e '.[bench]'    # gguf (MIT), which writes the GGUF
    .venv/bin/python bench/embedding_llamacpp.py

The GGUF is written from the packaged safetensors with the `gguf` package alone (llama.cpp's own
converter imports PyTorch): the tensors under llama.cpp's BERT names, the word-piece vocabulary in
its "phantom space" form, mean pooling. In f32, and in q8_0 (the products in int8, as the int8
ONNX graph). Both sides get the same word-piece ids: llama.cpp packs up to 32 inputs into one
512-token batch (as its server does), with and without its flash attention. Prints inputs/s
(median of 3) for 40 chunks of 330-400 tokens (ingestion's) and the 1,000 sentences of
bench/embedding_engines.py, and the largest difference from the ONNX graph's fp32 vectors (which
equal sentence-transformers' to 3e-7). Writes bench/results/embedding_llamacpp.json.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))


def write_gguf(model_dir: Path, path: Path, qtype: str) -> None:
    """all-MiniLM-L6-v2's safetensors as a llama.cpp BERT GGUF; `qtype` "f32" or "q8_0" (the layers' matrices)."""
    import gguf
    from safetensors.numpy import load_file

    cfg = json.loads((model_dir / "config.json").read_text())
    tok = json.loads((model_dir / "tokenizer.json").read_text())
    writer = gguf.GGUFWriter(str(path), "bert")
    writer.add_context_length(cfg["max_position_embeddings"])
    writer.add_embedding_length(cfg["hidden_size"])
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_block_count(cfg["num_hidden_layers"])
    writer.add_head_count(cfg["num_attention_heads"])
    writer.add_layer_norm_eps(cfg["layer_norm_eps"])
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType.MEAN)
    ids = tok["model"]["vocab"]
    control = {t["content"] for t in tok["added_tokens"]}
    vocab = sorted(ids, key=ids.__getitem__)
    # llama.cpp's word-piece vocabulary: "##x" continues a word as "x", a word's first piece gets "▁".
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_type_count(cfg["type_vocab_size"])
    writer.add_token_list([t if t in control else t[2:] if t.startswith("##") else "\u2581" + t for t in vocab])
    writer.add_token_types([gguf.TokenType.CONTROL if t in control else gguf.TokenType.NORMAL for t in vocab])
    writer.add_bos_token_id(ids["[CLS]"])
    writer.add_eos_token_id(ids["[SEP]"])
    writer.add_sep_token_id(ids["[SEP]"])
    writer.add_pad_token_id(ids["[PAD]"])
    writer.add_unk_token_id(ids["[UNK]"])
    writer.add_mask_token_id(ids["[MASK]"])
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, cfg["num_hidden_layers"])
    for name, array in load_file(str(model_dir / "model.safetensors")).items():
        target = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if target is None:  # position_ids
            continue
        array = array.astype(np.float32)
        if qtype == "q8_0" and array.ndim == 2 and target.startswith("blk."):
            q8 = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(target, gguf.quants.quantize(array, q8), raw_dtype=q8)
        else:
            writer.add_tensor(target, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def embed_llamacpp(llm: Any, inputs: list[list[int]], cls: int, sep: int) -> np.ndarray:
    """Unit vectors for word-piece ids (no [CLS]/[SEP]), sorted by length and packed 32 to a 512-token batch."""
    import llama_cpp

    width = llm.n_embd()
    out = np.empty((len(inputs), width), dtype=np.float32)
    batch, packed, tokens = llm._batch, [], 0

    def decode() -> None:
        llm._ctx.kv_cache_clear()
        llm._ctx.decode(batch)
        batch.reset()
        for seq, i in enumerate(packed):
            vector = np.ctypeslib.as_array(llama_cpp.llama_get_embeddings_seq(llm._ctx.ctx, seq), shape=(width,))
            out[i] = vector / np.linalg.norm(vector)

    for i in sorted(range(len(inputs)), key=lambda i: len(inputs[i])):
        seq = [cls, *inputs[i], sep]
        if packed and (tokens + len(seq) > 512 or len(packed) == 32):
            decode()
            packed, tokens = [], 0
        batch.add_sequence(seq, len(packed), True)
        packed.append(i)
        tokens += len(seq)
    decode()
    return out


def _median_rate(run: Any, count: int) -> float:
    times = []
    for _ in range(3):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return count / statistics.median(times)


def main() -> None:
    from embedding_engines import SENTENCES
    from llama_cpp import Llama

    from homeport.backends.bert import BertEncoder
    from homeport.services.inference.registry import locate_weights
    from homeport.settings import DEFAULT_MODELS

    model_dir = locate_weights(next(m for m in DEFAULT_MODELS if m.id == "all-minilm-l6-v2"), Path("/nonexistent"))
    encoder = BertEncoder(model_dir, runtime="onnx")
    rng = np.random.default_rng(0)
    chunks = [[int(t) for t in rng.integers(2000, 20000, int(rng.integers(330, 401)))] for _ in range(40)]
    inputs = {"400-token chunks": chunks, "1,000 sentences": encoder.tokenize(SENTENCES)}
    reference = {name: encoder.embed_tokens(batch) for name, batch in inputs.items()}
    rows = []
    for name, batch in inputs.items():
        rate = _median_rate(lambda batch=batch: encoder.embed_tokens(batch), len(batch))
        rows.append({"engine": "ONNX Runtime graph (fp32)", "inputs": name, "per_s": round(rate, 1), "max_diff": 0.0})
    with tempfile.TemporaryDirectory() as tmp:
        for qtype in ("f32", "q8_0"):
            path = Path(tmp) / f"minilm-{qtype}.gguf"
            write_gguf(model_dir, path, qtype)
            for flash in (False, True):
                llm = Llama(str(path), embedding=True, n_ctx=512, n_batch=512, n_ubatch=512, n_seq_max=32,
                            n_threads=2, n_threads_batch=2, flash_attn=flash, verbose=False)  # fmt: skip
                for name, batch in inputs.items():

                    def run(llm: Any = llm, batch: list[list[int]] = batch) -> np.ndarray:
                        return embed_llamacpp(llm, batch, encoder._cls, encoder._sep)

                    diff = float(np.abs(run() - reference[name]).max())
                    engine = f"llama.cpp BERT ({qtype}{', flash attention' if flash else ''})"
                    rows.append({"engine": engine, "inputs": name, "per_s": round(_median_rate(run, len(batch)), 1),
                                 "max_diff": diff})  # fmt: skip
                del llm
    print("| engine | inputs | inputs/s | max difference from fp32 vectors |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['engine']} | {row['inputs']} | {row['per_s']} | {row['max_diff']:.1e} |")
    out = REPO / "bench" / "results" / "embedding_llamacpp.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
