#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target, one folder per target:

    make-seeds.py OUT_DIR --model-dir DIR --tokenizer-dir DIR
                  [--lathe-compile PATH] [--source-dir DIR]

Seeds are small samples of real files, made here so that nothing large is
kept in the repository: stories15M's header and a few hundred entries of its
tokenizer.bin, the Llama 2 and Qwen3 tokenizer.json cut to a few hundred
tokens with the merges among them, tiny llama2.c and Hugging Face
checkpoints in the real layouts, test/data's safetensors fixture, and, with
a lathe-compile, tiny artifacts compiled from them. A fetched file that is
missing only drops the seeds made from it (a target still fuzzes from the
rest, or from nothing).

A new target's seeds are one more function in SEEDS, named after the
target's folder (fuzz-NAME reads OUT_DIR/NAME).
"""
import argparse
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

rng = random.Random(19)


def write(folder, name, data):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def floats(n, scale=0.5):
    return struct.pack(f"<{n}f", *[rng.uniform(-scale, scale) for _ in range(n)])


# ---------------------------------------------------------------- llama2.c


def llama2c_checkpoint(dim, hidden, layers, heads, kv_heads, vocab, seq, tied=True):
    """A checkpoint in llama2.c's legacy export (see Llama2cCheckpoint.h)."""
    head = dim // heads
    kv = kv_heads * head
    header = struct.pack("<7i", dim, hidden, layers, heads, kv_heads,
                         vocab if tied else -vocab, seq)
    sizes = [vocab * dim, layers * dim, layers * dim * dim, layers * kv * dim,
             layers * kv * dim, layers * dim * dim, layers * dim,
             layers * hidden * dim, layers * dim * hidden, layers * hidden * dim,
             dim, seq * head]
    if not tied:
        sizes.append(vocab * dim)
    return header + b"".join(floats(n) for n in sizes)


def read_llama2c_tokenizer(path):
    """[(score, piece bytes)] of a tokenizer.bin."""
    data = open(path, "rb").read()
    pos, records = 4, []
    while pos < len(data):
        score, length = struct.unpack_from("<fi", data, pos)
        records.append((score, data[pos + 8:pos + 8 + length]))
        pos += 8 + length
    return records


def write_llama2c_tokenizer(records):
    longest = max(len(piece) for _, piece in records)
    return struct.pack("<i", longest) + b"".join(
        struct.pack("<fi", score, len(piece)) + piece for score, piece in records)


def small_vocabulary(pieces, first, size):
    """Indices into `pieces` to keep, in order: the first `first` (special
    and byte tokens), the one-character ASCII pieces and the word-start
    marks, then the earliest of the rest up to `size`."""
    keep = set(range(first))
    marks = ("\u2581", "\u0120")  # SentencePiece's and byte-level BPE's space
    for i, p in enumerate(pieces):
        if len(p) == 1 and (p.isascii() or p in marks):
            keep.add(i)
    for i in range(first, len(pieces)):
        if len(keep) >= size:
            break
        keep.add(i)
    return sorted(keep)


def seeds_llama2c_checkpoint(out, args):
    write(out, "tiny-tied.bin", llama2c_checkpoint(8, 16, 2, 2, 1, 12, 4))
    write(out, "tiny-untied.bin", llama2c_checkpoint(8, 24, 1, 4, 4, 10, 3, tied=False))
    bin_path = os.path.join(args.model_dir, "stories15M.bin")
    if os.path.exists(bin_path):
        # The real header, then the start of the embedding: the sizes it
        # implies are stories15M's, the file far shorter.
        write(out, "stories15M-head.bin", open(bin_path, "rb").read(28 + 64))


def seeds_llama2c_tokenizer(out, args):
    path = os.path.join(args.model_dir, "tokenizer.bin")
    if not os.path.exists(path):
        return
    records = read_llama2c_tokenizer(path)
    pieces = [p.decode("utf-8", "replace") for _, p in records]
    keep = small_vocabulary(pieces, 259, 512)
    write(out, "stories15M-512.bin", write_llama2c_tokenizer([records[i] for i in keep]))
    write(out, "stories15M-259.bin", write_llama2c_tokenizer(records[:259]))


# ------------------------------------------------------ Hugging Face files


def small_tokenizer_json(folder, size=512):
    """A tokenizer.json (and its tokenizer_config.json) cut to about `size`
    tokens: the byte tokens, single characters, and the earliest merges
    among them; ids renumbered in their old order, added tokens after."""
    tok = json.load(open(os.path.join(folder, "tokenizer.json"), encoding="utf-8"))
    model = tok["model"]
    by_id = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    pieces = [p for p, _ in by_id]
    keep = {pieces[i] for i in small_vocabulary(pieces, 259, size // 2)}
    merges = []
    for m in model["merges"]:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        if a in keep and b in keep and a + b in model["vocab"]:
            if a + b not in keep and len(keep) >= size:
                continue
            keep.add(a + b)
            merges.append(m)
    kept = [p for p in pieces if p in keep]
    new_id = {model["vocab"][p]: i for i, p in enumerate(kept)}
    model["vocab"] = {p: i for i, p in enumerate(kept)}
    model["merges"] = merges
    for added in tok.get("added_tokens", []):
        if added["id"] not in new_id:
            new_id[added["id"]] = len(new_id)
        added["id"] = new_id[added["id"]]
    # TemplateProcessing names its special tokens' ids too.
    post = tok.get("post_processor") or {}
    for special in (post.get("special_tokens") or {}).values():
        special["ids"] = [new_id.get(i, 0) for i in special["ids"]]
    config = {}
    config_path = os.path.join(folder, "tokenizer_config.json")
    if os.path.exists(config_path):
        config = json.load(open(config_path, encoding="utf-8"))
        config.pop("chat_template", None)
        decoder = config.pop("added_tokens_decoder", {})
        config["added_tokens_decoder"] = {
            str(new_id[int(i)]): t for i, t in decoder.items() if int(i) in new_id}
    return (json.dumps(tok, ensure_ascii=False, indent=1),
            json.dumps(config, ensure_ascii=False, indent=1), len(new_id))


def seeds_hf_tokenizer(out, args):
    for name in ("llama2", "qwen3"):
        folder = os.path.join(args.tokenizer_dir, name)
        if not os.path.exists(os.path.join(folder, "tokenizer.json")):
            continue
        tok, config, _ = small_tokenizer_json(folder)
        write(out, f"{name}.json", tok.encode() + b"\0" + config.encode())
        write(out, f"{name}-no-config.json", tok)


def safetensors_bytes(tensors, metadata=None):
    """tensors: [(name, dtype, shape, data bytes)]"""
    header, blobs, offset = {}, [], 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def hf_checkpoint(dim, hidden, layers, heads, kv_heads, vocab, tied, dtype="F32"):
    """(config.json text, model.safetensors bytes) of a tiny LlamaForCausalLM."""
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
              "hidden_size": dim, "intermediate_size": hidden,
              "num_hidden_layers": layers, "num_attention_heads": heads,
              "num_key_value_heads": kv_heads, "vocab_size": vocab,
              "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
              "rope_theta": 10000.0, "hidden_act": "silu",
              "tie_word_embeddings": tied}
    head = dim // heads
    shapes = [("model.embed_tokens.weight", [vocab, dim]), ("model.norm.weight", [dim])]
    if not tied:
        shapes.append(("lm_head.weight", [vocab, dim]))
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes += [(p + "input_layernorm.weight", [dim]),
                   (p + "post_attention_layernorm.weight", [dim]),
                   (p + "self_attn.q_proj.weight", [dim, dim]),
                   (p + "self_attn.k_proj.weight", [kv_heads * head, dim]),
                   (p + "self_attn.v_proj.weight", [kv_heads * head, dim]),
                   (p + "self_attn.o_proj.weight", [dim, dim]),
                   (p + "mlp.gate_proj.weight", [hidden, dim]),
                   (p + "mlp.up_proj.weight", [hidden, dim]),
                   (p + "mlp.down_proj.weight", [dim, hidden])]
    tensors = []
    for name, shape in shapes:
        n = 1
        for d in shape:
            n *= d
        data = floats(n)
        if dtype != "F32":  # bf16: the top half of each float
            data = b"".join(data[i + 2:i + 4] for i in range(0, len(data), 4))
        tensors.append((name, dtype, shape, data))
    return json.dumps(config, indent=1), safetensors_bytes(tensors, {"format": "pt"})


def seeds_safetensors(out, args):
    fixture = os.path.join(args.source_dir, "test/data/safetensors/fixture.safetensors")
    if os.path.exists(fixture):
        shutil.copy(fixture, os.path.join(out, "fixture.safetensors"))
    write(out, "mixed.safetensors", safetensors_bytes(
        [("a", "F32", [2, 3], floats(6)), ("b", "F16", [3], b"\0\x3c" * 3),
         ("c", "BF16", [], b"\x80\x3f"), ("empty", "F32", [0, 4], b"")],
        {"format": "pt", "note": "seed"}))
    write(out, "model.safetensors", hf_checkpoint(8, 16, 1, 2, 1, 12, True)[1])


def seeds_hf_checkpoint(out, args):
    for name, shape in {"tied": (8, 16, 1, 2, 2, 12, True),
                        "untied-gqa": (8, 16, 2, 4, 2, 10, False)}.items():
        config, weights = hf_checkpoint(*shape)
        write(out, name, config.encode() + b"\0" + weights)
    config, weights = hf_checkpoint(8, 16, 1, 2, 1, 12, True, "BF16")
    write(out, "bf16", config.encode() + b"\0" + weights)
    write(out, "config-only", config)


# ---------------------------------------------------------------- artifacts


def seeds_artifact(out, args):
    if not args.lathe_compile or not os.path.exists(args.lathe_compile):
        print("make-seeds: no lathe-compile, no artifact seeds", file=sys.stderr)
        return
    with tempfile.TemporaryDirectory() as tmp:
        def compile(name, model, *flags):
            # A lathe-compile that fails costs this seed, not the fuzz run:
            # the compiler's own tests report its failures.
            cmd = [args.lathe_compile, model, "-q", "-o", os.path.join(out, name)] + list(flags)
            try:
                subprocess.run(cmd, check=True, timeout=600, capture_output=True)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
                print(f"make-seeds: no seed {name}: {' '.join(cmd)}: {e}", file=sys.stderr)

        compile("tiny.lathe", os.path.join(args.source_dir, "test/lit/tools/Inputs/tiny-llama.mlir"))
        compile("tiny-kv-f16.lathe",
                os.path.join(args.source_dir, "test/lit/tools/Inputs/tiny-llama.mlir"), "--kv=f16")
        tok_path = os.path.join(args.model_dir, "tokenizer.bin")
        if os.path.exists(tok_path):
            records = read_llama2c_tokenizer(tok_path)
            pieces = [p.decode("utf-8", "replace") for _, p in records]
            small = [records[i] for i in small_vocabulary(pieces, 259, 320)]
            write(tmp, "tokenizer.bin", write_llama2c_tokenizer(small))
            write(tmp, "model.bin", llama2c_checkpoint(8, 16, 1, 2, 1, len(small), 8))
            compile("llama2c-tokenizer.lathe", os.path.join(tmp, "model.bin"),
                    "--tokenizer", os.path.join(tmp, "tokenizer.bin"))
        hf = os.path.join(args.tokenizer_dir, "llama2")
        if os.path.exists(os.path.join(hf, "tokenizer.json")):
            tok, config, vocab = small_tokenizer_json(hf, 320)
            for name, dim, flags in (("hf-tokenizer.lathe", 16, []),
                                     ("hf-int4.lathe", 32, ["--quant=int4:group=32"])):
                folder = os.path.join(tmp, name)
                model_config, weights = hf_checkpoint(dim, 32, 1, 2, 1, vocab, True)
                write(folder, "config.json", model_config)
                write(folder, "model.safetensors", weights)
                write(folder, "tokenizer.json", tok)
                write(folder, "tokenizer_config.json", config)
                compile(name, folder, *flags)


# ------------------------------------------------------------- flag texts

FLAGS = ["none", "bfp4", "bfp6:block=16", "bfp8:block=64", "mxint8", "mx:fp6_e3m2",
         "mxfp8_e5m2", "mxfp4", "fp6_4p2", "fp6_4p2:group=64", "int8:group=32",
         "int4:group=32:asym", "int4:sym:classifier", "bfp4:reorder:float-classifier",
         "mixed:bits=4.5", "mixed:bits=5:reorder", "f32", "f16", "bf16"]


def seeds_compile_flags(out, args):
    for i, text in enumerate(FLAGS):
        write(out, f"flag{i}", text)


def seeds_gguf(out, args):
    """The lit tests' tiny GGUFs (Q4_0 matrices, a Q8_0 classifier, a
    SentencePiece vocabulary) and their broken kinds."""
    script = os.path.join(args.source_dir, "test/lit/tools/Inputs/make-tiny-gguf.py")
    for kind in ["ok", "truncated", "past-end", "type", "tokenizer"]:
        subprocess.run([sys.executable, script, os.path.join(out, kind + ".gguf"), kind],
                       check=True)


def seeds_chat_template(out, args):
    """The chat templates the interpreter is tested with (real models' and
    the plain one), each alone and with messages after a NUL byte."""
    folder = os.path.join(args.source_dir, "test/data/chat-templates")
    messages = json.dumps([{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"},
                           {"role": "assistant", "content": "<think>a</think>b"},
                           {"role": "user", "content": "again"}]).encode()
    for name in sorted(os.listdir(folder)):
        if name.endswith(".jinja"):
            with open(os.path.join(folder, name), "rb") as f:
                source = f.read()
            write(out, name, source)
            write(out, name + "-messages", source + b"\0" + messages)


def seeds_completion_request(out, args):
    """Request bodies of both endpoints: every field, stop strings, errors."""
    bodies = [
        {"model": "m", "prompt": "Once upon a time", "max_tokens": 16, "temperature": 0.7,
         "top_p": 0.9, "seed": 7, "stop": ["a", "time"], "stream": True,
         "stream_options": {"include_usage": True}, "n": 1, "user": "u"},
        {"model": "m", "prompt": [1, 2, 3], "echo": False, "logprobs": 0},
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
         "max_completion_tokens": 5, "stop": "\n\n", "tools": [], "tool_choice": "none"},
        {"model": "m", "prompt": "x", "frobnicate": 1},
        {"model": "m", "messages": [{"role": 3}], "temperature": 5},
    ]
    for i, body in enumerate(bodies):
        write(out, f"body{i}", json.dumps(body).encode())


def seeds_draft_files(out, args):
    """Texts files of ids below the target's vocabulary of 16, alone and
    before a NUL and the start of a state (the target's mutator writes
    whole states from there)."""
    write(out, "texts", b"1 2 3 4\n5 6 7\n1 2 3 9\n")
    write(out, "texts-and-state", b"1 2 3\n\0LTHDRFT1")
    write(out, "spaces", b"\n 4  5\t6 \r\n\n")


SEEDS = {
    "llama2c-checkpoint": seeds_llama2c_checkpoint,
    "llama2c-tokenizer": seeds_llama2c_tokenizer,
    "hf-tokenizer": seeds_hf_tokenizer,
    "safetensors": seeds_safetensors,
    "hf-checkpoint": seeds_hf_checkpoint,
    "artifact": seeds_artifact,
    "compile-flags": seeds_compile_flags,
    "gguf": seeds_gguf,
    "chat-template": seeds_chat_template,
    "completion-request": seeds_completion_request,
    "draft-files": seeds_draft_files,
}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--model-dir", default=os.path.expanduser("~/.cache/lathe/models/stories15M"))
    p.add_argument("--tokenizer-dir", default=os.path.expanduser("~/.cache/lathe/tokenizers"))
    p.add_argument("--lathe-compile", default="")
    p.add_argument("--source-dir", default=os.path.join(os.path.dirname(__file__), "..", ".."))
    args = p.parse_args()
    for name, make in SEEDS.items():
        folder = os.path.join(args.out, name)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        make(folder, args)
        files = os.listdir(folder)
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in files)
        print(f"{name}: {len(files)} seeds, {size} bytes")


if __name__ == "__main__":
    main()
