#!/usr/bin/env python3
"""Writes a llama2.c checkpoint (stories15M.bin) as a Hugging Face
LlamaForCausalLM folder: config.json and model.safetensors, the q/k rows
permuted into HF's rotate-half order as transformers' conversion script
does, in bf16 (rounded to nearest even) or f32:

    llama2c-to-hf.py CHECKPOINT OUT_DIR [--f32]

Pure Python (no numpy or torch), for a real model's weights to pack with
lathe-pack where only a checkpoint of that form is at hand.
"""
import array
import json
import os
import struct
import sys

args = [a for a in sys.argv[1:] if a != "--f32"]
f32 = "--f32" in sys.argv
src, out = args
data = open(src, "rb").read()
dim, hidden, layers, heads, kv_heads, vocab, seq = struct.unpack("<7i", data[:28])
shared = vocab > 0
vocab = abs(vocab)
head_dim = dim // heads
kv_dim = kv_heads * head_dim
floats = array.array("f")
floats.frombytes(data[28:])
pos = 0


def take(n):
    global pos
    pos += n
    return floats[pos - n:pos]


def rows(values, cols):
    return [values[r * cols:(r + 1) * cols] for r in range(len(values) // cols)]


def rotate_half(values, cols):
    """Meta's interleaved rows (2i, 2i+1) of each head -> HF rows (i, i + half)."""
    rs = rows(values, cols)
    out_rows = [None] * len(rs)
    half = head_dim // 2
    for r, row in enumerate(rs):
        head, within = divmod(r, head_dim)
        i, j = divmod(within, 2)
        out_rows[head * head_dim + j * half + i] = row
    result = array.array("f")
    for row in out_rows:
        result.extend(row)
    return result


emb = take(vocab * dim)
att_norm = take(layers * dim)
wq = take(layers * dim * dim)
wk = take(layers * kv_dim * dim)
wv = take(layers * kv_dim * dim)
wo = take(layers * dim * dim)
ffn_norm = take(layers * dim)
w1 = take(layers * hidden * dim)
w2 = take(layers * dim * hidden)
w3 = take(layers * hidden * dim)
final_norm = take(dim)
take(seq * head_dim)  # the freq_cis tables llama2.c stores, unused
classifier = emb if shared else take(vocab * dim)

tensors = [("model.embed_tokens.weight", emb, [vocab, dim])]
for l in range(layers):
    p = f"model.layers.{l}."
    part = lambda a, n: a[l * n:(l + 1) * n]
    tensors += [
        (p + "input_layernorm.weight", part(att_norm, dim), [dim]),
        (p + "self_attn.q_proj.weight", rotate_half(part(wq, dim * dim), dim), [dim, dim]),
        (p + "self_attn.k_proj.weight", rotate_half(part(wk, kv_dim * dim), dim), [kv_dim, dim]),
        (p + "self_attn.v_proj.weight", part(wv, kv_dim * dim), [kv_dim, dim]),
        (p + "self_attn.o_proj.weight", part(wo, dim * dim), [dim, dim]),
        (p + "post_attention_layernorm.weight", part(ffn_norm, dim), [dim]),
        (p + "mlp.gate_proj.weight", part(w1, hidden * dim), [hidden, dim]),
        (p + "mlp.down_proj.weight", part(w2, dim * hidden), [dim, hidden]),
        (p + "mlp.up_proj.weight", part(w3, hidden * dim), [hidden, dim]),
    ]
tensors.append(("model.norm.weight", final_norm, [dim]))
if not shared:
    tensors.append(("lm_head.weight", classifier, [vocab, dim]))


def encode(values):
    if f32:
        return values.tobytes()
    bits = array.array("I")
    bits.frombytes(values.tobytes())
    halves = array.array("H", ((b + 0x7FFF + ((b >> 16) & 1)) >> 16 for b in bits))
    return halves.tobytes()


header, blobs, offset = {}, [], 0
for name, values, shape in tensors:
    blob = encode(values)
    header[name] = {"dtype": "F32" if f32 else "BF16", "shape": shape,
                    "data_offsets": [offset, offset + len(blob)]}
    blobs.append(blob)
    offset += len(blob)
header["__metadata__"] = {"format": "pt"}
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text)
    for blob in blobs:
        f.write(blob)
config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": dim,
          "intermediate_size": hidden, "num_hidden_layers": layers,
          "num_attention_heads": heads, "num_key_value_heads": kv_heads,
          "vocab_size": vocab, "max_position_embeddings": seq, "rms_norm_eps": 1e-5,
          "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": shared,
          "torch_dtype": "float32" if f32 else "bfloat16"}
json.dump(config, open(os.path.join(out, "config.json"), "w"), indent=1)
