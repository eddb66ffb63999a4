#!/usr/bin/env python3
"""A GGUF (llama architecture, F16, random weights) of a speed model's shapes
(scripts/speed-models/*.json), for llama.cpp as a benchmark peer of
lathe-bench on the GPU (scripts/llama-cpp-cuda-peer.sh). The vocabulary is a
placeholder SentencePiece one (<unk>, <s>, </s>, the 256 byte tokens, then
filler pieces): llama-bench decodes token ids, never text.

    PYTHONPATH=llama.cpp/gguf-py python3 scripts/make-speed-gguf.py CONFIG.json OUT.gguf
"""
import json
import sys

import gguf
import numpy as np


def main(config_path, out):
    c = json.load(open(config_path))
    d, f, layers = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    heads, kv, vocab = c["num_attention_heads"], c["num_key_value_heads"], c["vocab_size"]
    hd = d // heads
    w = gguf.GGUFWriter(out, "llama")
    w.add_name(c.get("_comment", "speed model")[:60])
    w.add_context_length(c["max_position_embeddings"])
    w.add_embedding_length(d)
    w.add_block_count(layers)
    w.add_feed_forward_length(f)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_rope_dimension_count(hd)
    w.add_rope_freq_base(c.get("rope_theta", 10000.0))
    w.add_layer_norm_rms_eps(c.get("rms_norm_eps", 1e-5))
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    tokens = [b"<unk>", b"<s>", b"</s>"] + [f"<0x{i:02X}>".encode() for i in range(256)]
    tokens += [f"tok{i}".encode() for i in range(vocab - len(tokens))]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    types += [gguf.TokenType.BYTE] * 256 + [gguf.TokenType.NORMAL] * (vocab - 259)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * vocab)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    rng = np.random.default_rng(0)

    def matrix(rows, cols):
        return (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float16)

    def gain(n):
        return np.ones(n, dtype=np.float32)

    w.add_tensor("token_embd.weight", matrix(vocab, d))
    for l in range(layers):
        p = f"blk.{l}."
        w.add_tensor(p + "attn_norm.weight", gain(d))
        w.add_tensor(p + "attn_q.weight", matrix(heads * hd, d))
        w.add_tensor(p + "attn_k.weight", matrix(kv * hd, d))
        w.add_tensor(p + "attn_v.weight", matrix(kv * hd, d))
        w.add_tensor(p + "attn_output.weight", matrix(d, heads * hd))
        w.add_tensor(p + "ffn_norm.weight", gain(d))
        w.add_tensor(p + "ffn_gate.weight", matrix(f, d))
        w.add_tensor(p + "ffn_up.weight", matrix(f, d))
        w.add_tensor(p + "ffn_down.weight", matrix(d, f))
    w.add_tensor("output_norm.weight", gain(d))
    if not c.get("tie_word_embeddings", False):
        w.add_tensor("output.weight", matrix(vocab, d))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
