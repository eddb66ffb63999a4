#!/usr/bin/env python3
"""Writes a tiny random LlamaForCausalLM folder (config.json +
model.safetensors, F32, tied embeddings) around a Hugging Face tokenizer:

    make-tiny-hf-folder.py OUT_DIR [TOKENIZER_DIR] [--ffn N]

The vocabulary size is the tokenizer's (its largest id + 1), so the folder
compiles with the tokenizer.json and tokenizer_config.json copied beside
it; without TOKENIZER_DIR the folder has no tokenizer and 96 ids. --ffn
sets the FFN size (default 64), for another model of the same hidden
size. The weights are seeded noise (no torch needed: safetensors is a JSON
header and raw little-endian bytes).
"""
import json
import os
import random
import shutil
import struct
import sys

args = sys.argv[1:]
hidden = 64
if "--ffn" in args:
    i = args.index("--ffn")
    hidden = int(args[i + 1])
    del args[i:i + 2]
out = args[0]
tokdir = args[1] if len(args) > 1 else None
os.makedirs(out, exist_ok=True)
vocab = 96
if tokdir:
    tok = json.load(open(os.path.join(tokdir, "tokenizer.json"), encoding="utf-8"))
    ids = list(tok["model"]["vocab"].values()) + [t["id"] for t in tok.get("added_tokens", [])]
    vocab = max(ids) + 1
dim, layers, heads = 32, 1, 2
config = {"architectures": ["LlamaForCausalLM"], "hidden_size": dim,
          "intermediate_size": hidden, "num_hidden_layers": layers,
          "num_attention_heads": heads, "num_key_value_heads": heads,
          "vocab_size": vocab, "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
          "tie_word_embeddings": True, "torch_dtype": "float32"}
json.dump(config, open(os.path.join(out, "config.json"), "w"), indent=1)

rng = random.Random(7)
shapes = {"model.embed_tokens.weight": [vocab, dim], "model.norm.weight": [dim]}
for l in range(layers):
    p = f"model.layers.{l}."
    shapes.update({p + "input_layernorm.weight": [dim],
                   p + "post_attention_layernorm.weight": [dim],
                   p + "self_attn.q_proj.weight": [dim, dim],
                   p + "self_attn.k_proj.weight": [dim, dim],
                   p + "self_attn.v_proj.weight": [dim, dim],
                   p + "self_attn.o_proj.weight": [dim, dim],
                   p + "mlp.gate_proj.weight": [hidden, dim],
                   p + "mlp.up_proj.weight": [hidden, dim],
                   p + "mlp.down_proj.weight": [dim, hidden]})
header, blobs, offset = {}, [], 0
for name, shape in shapes.items():
    n = 1
    for d in shape:
        n *= d
    if name.endswith("norm.weight"):
        values = [1.0] * n
    else:
        values = [rng.uniform(-0.5, 0.5) for _ in range(n)]
    blob = struct.pack(f"<{n}f", *values)
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(blob)]}
    blobs.append(blob)
    offset += len(blob)
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
with open(os.path.join(out, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text)
    for blob in blobs:
        f.write(blob)
for name in ("tokenizer.json", "tokenizer_config.json") if tokdir else ():
    if os.path.exists(os.path.join(tokdir, name)):
        shutil.copy(os.path.join(tokdir, name), out)
