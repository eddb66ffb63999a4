"""Greedy token ids of a tfm-dialect Llama (Inputs/tiny-llama.mlir), computed
in float64 by a plain Llama forward pass that shares no code with Lathe.

Reads the weights and the hyperparameters (epsilon, theta, head_dim, heads,
the KV cache's kv_heads and capacity, the RoPE layout) from the .mlir file;
the structure is Llama's, as in llama2.c: tied embedding, per layer
x += wo(attention(rope(wq h), rope(wk h), wv h)) with h = rms_norm(x), then
x += w2(silu(w1 h) * w3 h) with h = rms_norm(x); logits = emb . rms_norm(x).

  y = x / sqrt(mean(x^2) + eps) * gain
  RoPE: pair i of a head turns by pos * theta^(-2i / head_dim):
        (a, b) -> (a cos - b sin, a sin + b cos); interleaved pairs are
        dimensions (2i, 2i + 1), rotate_half pairs (i, i + head_dim / 2)
  attention: query head h reads KV head h / (heads / kv_heads), causal,
        softmax(q . k / sqrt(head_dim))

Usage: tiny-llama-reference.py MODEL.mlir --prompt-ids 1,2 -n 4
Prints the generated ids on one line, as `lathe-run --print-ids` does; stops
at the end of the context as lathe-run does (the last token is predicted
from position capacity - 1). Fails when the best two logits of a step are
closer than 1e-4, where a float32 build could fairly pick either: rounding
every intermediate of this model to float32 moves its logits by about 2e-7.
"""
import argparse
import math
import re
import struct
import sys

MIN_MARGIN = 1e-4


def f32(v):
    return struct.unpack("<f", struct.pack("<f", v))[0]


def read_model(path):
    text = open(path).read()
    weights = {}
    pattern = re.compile(
        r'tfm\.weight "([^"]+)" \{value = dense<(.*?)> : tensor<([0-9x]+)xf32>\}', re.S)
    for name, body, shape in pattern.findall(text):
        dims = [int(d) for d in shape.split("x")]
        values = [f32(float(v)) for v in re.findall(r"[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?", body)]
        count = math.prod(dims)
        if len(values) == 1:
            values *= count  # a splat
        if len(values) != count:
            sys.exit(f"{path}: weight {name} has {len(values)} values, its shape {shape} needs {count}")
        if len(dims) == 2:
            values = [values[r * dims[1]:(r + 1) * dims[1]] for r in range(dims[0])]
        weights[name] = values

    def attr(regex):
        found = set(re.findall(regex, text))
        if len(found) != 1:
            sys.exit(f"{path}: expected one value for {regex}, found {sorted(found)}")
        return found.pop()

    config = {
        "eps": float(attr(r"epsilon = ([0-9.eE+-]+)")),
        "theta": float(attr(r"theta = ([0-9.eE+-]+)")),
        "head_dim": int(attr(r"head_dim = ([0-9]+)\b")),
        "heads": int(attr(r"heads = ([0-9]+)\}")),
        "kv_heads": int(attr(r"kv_heads = ([0-9]+)")),
        "capacity": int(attr(r"capacity = ([0-9]+)")),
        "layers": int(attr(r"layers = ([0-9]+)")),
        "layout": attr(r"#tfm\.rope_layout<([a-z_]+)>"),
    }
    if config["layers"] != 1:
        sys.exit(f"{path}: the reference knows one layer's weight names, the model has {config['layers']}")
    return weights, config


def matvec(w, x):
    return [sum(wi * xi for wi, xi in zip(row, x)) for row in w]


def rms_norm(x, gain, eps):
    scale = 1.0 / math.sqrt(sum(v * v for v in x) / len(x) + eps)
    return [v * scale * g for v, g in zip(x, gain)]


def rope(x, pos, c):
    d = c["head_dim"]
    out = list(x)
    for head in range(0, len(x), d):
        for i in range(d // 2):
            if c["layout"] == "interleaved":
                a, b = head + 2 * i, head + 2 * i + 1
            elif c["layout"] == "rotate_half":
                a, b = head + i, head + i + d // 2
            else:
                sys.exit(f"unknown RoPE layout {c['layout']}")
            angle = pos * c["theta"] ** (-2.0 * i / d)
            cos, sin = math.cos(angle), math.sin(angle)
            out[a] = x[a] * cos - x[b] * sin
            out[b] = x[a] * sin + x[b] * cos
    return out


def step(w, c, cache, token, pos):
    """Logits after feeding `token` at `pos`; appends to the KV cache."""
    d = c["head_dim"]
    x = list(w["emb"][token])
    h = rms_norm(x, w["attn_norm"], c["eps"])
    q = rope(matvec(w["wq"], h), pos, c)
    k = rope(matvec(w["wk"], h), pos, c)
    v = matvec(w["wv"], h)
    cache.append((k, v))
    att = []
    group = c["heads"] // c["kv_heads"]
    for head in range(c["heads"]):
        kv = (head // group) * d
        qh = q[head * d:(head + 1) * d]
        scores = [sum(a * b for a, b in zip(qh, ck[kv:kv + d])) / math.sqrt(d) for ck, _ in cache]
        top = max(scores)
        e = [math.exp(s - top) for s in scores]
        total = sum(e)
        att += [sum(e[t] / total * cache[t][1][kv + j] for t in range(len(cache))) for j in range(d)]
    x = [a + b for a, b in zip(x, matvec(w["wo"], att))]
    h = rms_norm(x, w["ffn_norm"], c["eps"])
    gate, up = matvec(w["w1"], h), matvec(w["w3"], h)
    s = [g / (1.0 + math.exp(-g)) * u for g, u in zip(gate, up)]
    x = [a + b for a, b in zip(x, matvec(w["w2"], s))]
    return matvec(w["emb"], rms_norm(x, w["norm"], c["eps"]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--prompt-ids", required=True)
    parser.add_argument("-n", type=int, required=True)
    args = parser.parse_args()
    w, c = read_model(args.model)
    prompt = [int(t) for t in args.prompt_ids.split(",")]
    cache, generated = [], []
    for pos, token in enumerate(prompt):
        logits = step(w, c, cache, token, pos)
    pos = len(prompt) - 1
    while len(generated) < args.n:
        ranked = sorted(range(len(logits)), key=lambda t: -logits[t])
        if logits[ranked[0]] - logits[ranked[1]] < MIN_MARGIN:
            sys.exit(f"position {pos}: tokens {ranked[0]} and {ranked[1]} score within {MIN_MARGIN}")
        generated.append(ranked[0])
        pos += 1
        if pos == c["capacity"] or len(generated) == args.n:
            break
        logits = step(w, c, cache, generated[-1], pos)
    print(" ".join(map(str, generated)))


main()
