#!/usr/bin/env python3
"""Reference logits of Hugging Face transformers for small random checkpoints
of each decoder family Lathe imports (test/e2e/ArchitecturesTest.cpp).

For each architecture below this writes a Hugging Face folder (config.json
and model.safetensors, float32) whose weights come from a generator that the
C++ test repeats exactly (splitmix64 streams keyed by the tensor's name,
16-bit values that float32 holds exactly), loads it with
AutoModelForCausalLM.from_pretrained, runs the token ids through it in
float32 on the CPU with eager attention, and stores the config, the tensor
list, a checksum of the weights, the ids and every position's logits in
OUT_DIR/<name>.json.

Run where transformers is installed (the GPU machine):
    python3 scripts/make-arch-reference.py test/data/architectures
Only the folders, with no torch or transformers (for scripts/cuda-prepare.sh):
    python3 scripts/make-arch-reference.py --write-folders DIR
"""
import json
import os
import struct
import sys
import tempfile

MASK = (1 << 64) - 1

BASE = {
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 128,
    "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "hidden_act": "silu",
    "torch_dtype": "float32",
}
ARCHITECTURES = {
    # Llama 3: rope scaling "llama3"; theta 10000 with head_dim 16 puts pair
    # 0 below the high-frequency wavelength, pair 1 in the blend, 2..7 above.
    "llama3": {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
               "rope_theta": 10000.0, "tie_word_embeddings": True,
               "attention_bias": False, "mlp_bias": False,
               "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
                                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 32}},
    # Llama with attention_bias: biases on q, k, v and o.
    "llama-attention-bias": {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                             "rope_theta": 10000.0, "tie_word_embeddings": False,
                             "attention_bias": True, "mlp_bias": False},
    "mistral": {"architectures": ["MistralForCausalLM"], "model_type": "mistral",
                "rope_theta": 1000000.0, "tie_word_embeddings": False,
                "sliding_window": 4096},
    "qwen2": {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
              "rope_theta": 1000000.0, "tie_word_embeddings": True,
              "use_sliding_window": False, "sliding_window": 4096,
              "max_window_layers": 2},
    # Qwen3: q/k norms, and head_dim 32 with 4 heads: the attention is 128
    # wide in a 64-wide model.
    "qwen3": {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
              "rope_theta": 1000000.0, "tie_word_embeddings": True, "head_dim": 32,
              "attention_bias": False, "use_sliding_window": False,
              "sliding_window": None, "max_window_layers": 2},
    # Qwen3 with attention_bias: biases on q, k, v and o.
    "qwen3-attention-bias": {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
                             "rope_theta": 1000000.0, "tie_word_embeddings": True,
                             "head_dim": 32, "attention_bias": True,
                             "use_sliding_window": False, "sliding_window": None,
                             "max_window_layers": 2},
}
TOKENS = [(i * 37 + 11) % 128 for i in range(16)]


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & MASK
    return h


def values(name: str, count: int, kind: str):
    """u in [-1, 1) in steps of 2^-15 from splitmix64 seeded with
    fnv1a64(name); matrices and biases u / 4, gains 1 + u / 4."""
    x = fnv1a64(name.encode())
    out = []
    for _ in range(count):
        x = (x + 0x9E3779B97F4A7C15) & MASK
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        z ^= z >> 31
        u = ((z >> 48) - 32768) / 32768.0
        out.append(1.0 + u / 4 if kind == "gain" else u / 4)
    return out


def tensors(config):
    d, f = config["hidden_size"], config["intermediate_size"]
    heads, kv = config["num_attention_heads"], config["num_key_value_heads"]
    hd = config.get("head_dim") or d // heads
    qkv_bias = config["model_type"] == "qwen2" or config.get("attention_bias", False)
    o_bias = config["model_type"] != "qwen2" and config.get("attention_bias", False)
    out = [("model.embed_tokens.weight", [config["vocab_size"], d], "matrix")]
    for l in range(config["num_hidden_layers"]):
        p = f"model.layers.{l}."
        out += [(p + "input_layernorm.weight", [d], "gain"),
                (p + "self_attn.q_proj.weight", [heads * hd, d], "matrix"),
                (p + "self_attn.k_proj.weight", [kv * hd, d], "matrix"),
                (p + "self_attn.v_proj.weight", [kv * hd, d], "matrix"),
                (p + "self_attn.o_proj.weight", [d, heads * hd], "matrix")]
        if qkv_bias:
            out += [(p + "self_attn.q_proj.bias", [heads * hd], "bias"),
                    (p + "self_attn.k_proj.bias", [kv * hd], "bias"),
                    (p + "self_attn.v_proj.bias", [kv * hd], "bias")]
        if o_bias:
            out += [(p + "self_attn.o_proj.bias", [d], "bias")]
        if config["model_type"] == "qwen3":
            out += [(p + "self_attn.q_norm.weight", [hd], "gain"),
                    (p + "self_attn.k_norm.weight", [hd], "gain")]
        out += [(p + "post_attention_layernorm.weight", [d], "gain"),
                (p + "mlp.gate_proj.weight", [f, d], "matrix"),
                (p + "mlp.up_proj.weight", [f, d], "matrix"),
                (p + "mlp.down_proj.weight", [d, f], "matrix")]
    out.append(("model.norm.weight", [d], "gain"))
    if not config["tie_word_embeddings"]:
        out.append(("lm_head.weight", [config["vocab_size"], d], "matrix"))
    return out


def write_safetensors(path, named):
    header, blobs, offset = {}, [], 0
    for name, shape, data in named:
        raw = struct.pack(f"<{len(data)}f", *data)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def checkpoint(name):
    """The architecture's config, tensor list, named weights and their checksum."""
    config = dict(BASE, **ARCHITECTURES[name])
    listing = tensors(config)
    named, raw = [], bytearray()
    for tensor, shape, kind in listing:
        count = 1
        for s in shape:
            count *= s
        data = values(tensor, count, kind)
        named.append((tensor, shape, data))
        raw += struct.pack(f"<{count}f", *data)
    return config, listing, named, f"{fnv1a64(bytes(raw)):016x}"


def write_folder(folder, config, named):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    write_safetensors(os.path.join(folder, "model.safetensors"), named)


def main(out_dir):
    import torch
    import transformers
    os.makedirs(out_dir, exist_ok=True)
    for name in ARCHITECTURES:
        config, listing, named, checksum = checkpoint(name)
        with tempfile.TemporaryDirectory() as folder:
            write_folder(folder, config, named)
            model = transformers.AutoModelForCausalLM.from_pretrained(
                folder, torch_dtype=torch.float32, attn_implementation="eager")
        model.eval()
        with torch.no_grad():
            logits = model(torch.tensor([TOKENS])).logits[0]
        record = {
            "provenance": (f"scripts/make-arch-reference.py: transformers {transformers.__version__}, "
                           f"torch {torch.__version__}, float32 on the CPU, eager attention, "
                           f"{type(model).__name__}"),
            "config": config,
            "tensors": [{"name": t, "shape": s, "kind": k} for t, s, k in listing],
            "weights_fnv1a64": checksum,
            "tokens": TOKENS,
            "logits": [[float(f"{v:.8g}") for v in row.tolist()] for row in logits],
        }
        with open(os.path.join(out_dir, name + ".json"), "w") as f:
            json.dump(record, f, separators=(",", ":"))
            f.write("\n")
        print(name, type(model).__name__, "logits[0][:4]", record["logits"][0][:4])


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--write-folders":
        for name in ARCHITECTURES:
            config, _, named, _ = checkpoint(name)
            write_folder(os.path.join(sys.argv[2], name), config, named)
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else "test/data/architectures")
