"""Writes a tiny llama GGUF (or a broken one) for the lit tests.

  make-tiny-gguf.py OUT.gguf [KIND]

KIND: ok (default): dim 64, hidden 128, 2 layers, 4 heads (2 kv), 300
tokens of a SentencePiece vocabulary (<unk>, <s>, </s>, 256 byte tokens,
then pieces), f32 norms, Q4_0 matrices, a Q8_0 output; the weights are
small numbers from a fixed generator. Broken kinds: bad-magic, version1,
truncated (cut inside the metadata), past-end (the last tensor cut short),
arch (architecture 'gpt2'), type (one matrix in IQ4_NL), tokenizer
(tokenizer model 'bert').
"""
import struct
import sys

F32, Q4_0, Q8_0, IQ4_NL = 0, 2, 8, 20


def s(text):
    b = text.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


class Rng:  # a fixed LCG: the same bytes on every machine
    def __init__(self, seed):
        self.state = seed

    def next(self):
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        return ((self.state >> 33) % 2001 - 1000) / 1000.0  # [-1, 1]


def f32_bytes(values):
    return struct.pack("<%df" % len(values), *values)


def q8_0(values):
    out = b""
    for b in range(0, len(values), 32):
        block = values[b:b + 32]
        d = max(abs(v) for v in block) / 127
        out += struct.pack("<e", d)
        inv = 1 / d if d else 0
        out += struct.pack("<32b", *[int(round(v * inv)) for v in block])
    return out


def q4_0(values):
    out = b""
    for b in range(0, len(values), 32):
        block = values[b:b + 32]
        big = max(block, key=abs)
        d = big / -8
        inv = 1 / d if d else 0
        n = [min(15, int(v * inv + 8.5)) for v in block]
        out += struct.pack("<e", d) + bytes(n[j] | n[j + 16] << 4 for j in range(16))
    return out


def main():
    out, kind = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "ok"
    dim, hidden, layers, heads, kv_heads, vocab = 64, 128, 2, 4, 2, 300
    tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    pieces = ["\u2581", "h", "i", "hi", "\u2581hi", "e", "l", "o", "\u2581h", "he", "ll", "llo",
              "hello", "\u2581hello"]
    tokens += pieces + ["\u2581w%d" % i for i in range(vocab - len(tokens) - len(pieces))]
    scores = [0.0] * 259 + [-float(i) for i in range(vocab - 259)]
    types = [2, 3, 3] + [6] * 256 + [1] * (vocab - 259)

    meta = []

    def kv(key, type_id, payload):
        meta.append(s(key) + struct.pack("<I", type_id) + payload)

    kv("general.architecture", 8, s("gpt2" if kind == "arch" else "llama"))
    for key, value in [("llama.context_length", 64), ("llama.embedding_length", dim),
                       ("llama.feed_forward_length", hidden), ("llama.block_count", layers),
                       ("llama.attention.head_count", heads),
                       ("llama.attention.head_count_kv", kv_heads)]:
        kv(key, 4, struct.pack("<I", value))
    kv("llama.attention.layer_norm_rms_epsilon", 6, struct.pack("<f", 1e-5))
    kv("tokenizer.ggml.model", 8, s("bert" if kind == "tokenizer" else "llama"))
    kv("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, len(tokens)) + b"".join(s(t) for t in tokens))
    kv("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, len(scores)) + f32_bytes(scores))
    kv("tokenizer.ggml.token_type", 9, struct.pack("<IQ", 5, len(types)) + struct.pack("<%di" % len(types), *types))
    kv("tokenizer.ggml.bos_token_id", 4, struct.pack("<I", 1))
    kv("tokenizer.ggml.eos_token_id", 4, struct.pack("<I", 2))

    rng = Rng(7)
    tensors = []

    def tensor(name, rows, cols, type_id):
        values = [0.05 * rng.next() for _ in range(rows * cols)]
        if rows == 1:
            values = [1.0 + v for v in values]
        if type_id == F32:
            data = f32_bytes(values)
        elif type_id == Q8_0:
            data = q8_0(values)
        elif type_id == Q4_0:
            data = q4_0(values)
        else:  # IQ4_NL: 18 bytes a block of 32 values
            data = bytes(rows * cols // 32 * 18)
        dims = [cols] if rows == 1 else [cols, rows]
        tensors.append((name, dims, type_id, data))

    kv_dim = dim // heads * kv_heads
    tensor("token_embd.weight", vocab, dim, Q4_0)
    for l in range(layers):
        p = "blk.%d." % l
        tensor(p + "attn_norm.weight", 1, dim, F32)
        tensor(p + "attn_q.weight", dim, dim, Q4_0)
        tensor(p + "attn_k.weight", kv_dim, dim, Q4_0)
        tensor(p + "attn_v.weight", kv_dim, dim, Q4_0)
        tensor(p + "attn_output.weight", dim, dim, Q4_0)
        tensor(p + "ffn_norm.weight", 1, dim, F32)
        tensor(p + "ffn_gate.weight", hidden, dim, Q4_0)
        tensor(p + "ffn_down.weight", dim, hidden, IQ4_NL if kind == "type" and l == 1 else Q4_0)
        tensor(p + "ffn_up.weight", hidden, dim, Q4_0)
    tensor("output_norm.weight", 1, dim, F32)
    tensor("output.weight", vocab, dim, Q8_0)

    header = b"GGUF" + struct.pack("<IQQ", 1 if kind == "version1" else 3, len(tensors), len(meta))
    header += b"".join(meta)
    offset, infos, data = 0, b"", b""
    for name, dims, type_id, payload in tensors:
        infos += s(name) + struct.pack("<I", len(dims)) + struct.pack("<%dQ" % len(dims), *dims)
        infos += struct.pack("<IQ", type_id, offset)
        padded = payload + bytes(-len(payload) % 32)
        data += padded
        offset += len(padded)
    body = header + infos
    body += bytes(-len(body) % 32)
    blob = body + data
    if kind == "bad-magic":
        blob = b"GGML" + blob[4:]
    elif kind == "truncated":
        blob = blob[:200]
    elif kind == "past-end":
        blob = blob[:-100]
    with open(out, "wb") as f:
        f.write(blob)


if __name__ == "__main__":
    main()
