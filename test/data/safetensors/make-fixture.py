#!/usr/bin/env python3
"""Writes fixture.safetensors with the reference safetensors writer.

    python3 test/data/safetensors/make-fixture.py OUT_DIR

needs torch and the official `safetensors` package (safetensors.torch.save_file
does the writing; nothing here touches the file format). Lathe's own writer
must not produce the fixture: the point is to read bytes that another writer
laid out. The test that reads it is Safetensors.ReadsReferenceWriterFixture in
test/unit/compiler/Frontend/CheckpointReadersTest.cpp; copy
OUT_DIR/fixture.safetensors to test/data/safetensors/ and record the printed
versions in test/data/README.md.

Nothing is random: the file depends only on the table below and on the
safetensors version.
"""

import hashlib
import os
import sys

import safetensors
import torch
from safetensors.torch import load_file, save_file

SOURCE = "test/data/safetensors/make-fixture.py"

# Element i (row-major) of each tensor is (i - c) * 2^(2i - s): negatives, a
# zero and positives, over a wide exponent range (bf16 near 2^116, f16
# subnormals down to 3 * 2^-24). Every value is exact in its dtype, which
# check_exact() below confirms.
# Keep in step with kFixture in test/unit/compiler/Frontend/CheckpointReadersTest.cpp.
# Insertion order is deliberately neither sorted by name nor by dtype, so the
# file's layout is the library's choice, not this table's.
#   name           dtype           shape    c    s
TENSORS = [
    ("zeta.f32",    torch.float32,  (2, 3),  2,    8),
    ("mid.f16",     torch.float16,  (3, 4),  5,   10),
    ("alpha.bf16",  torch.bfloat16, (4, 2),  3, -100),
    ("vec.f16",     torch.float16,  (7,),    3,   24),
    ("one.f32",     torch.float32,  (1,),    7,   -3),
    ("scalar.bf16", torch.bfloat16, (),     -5,    2),
    ("empty.f32",   torch.float32,  (0, 3),  0,    0),
]


def values(shape, c, s):
    n = 1
    for d in shape:
        n *= d
    # Exact in float64: small integers times powers of two.
    return [(i - c) * 2.0 ** (2 * i - s) for i in range(n)]


def check_exact(name, tensor, want):
    got = tensor.to(torch.float64).flatten().tolist()
    if got != want:
        sys.exit(f"{name}: {tensor.dtype} cannot hold the formula exactly: "
                 f"got {got}, want {want}")


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT_DIR")
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "fixture.safetensors")

    tensors = {}
    for name, dtype, shape, c, s in TENSORS:
        want = values(shape, c, s)
        t = torch.tensor(want, dtype=torch.float64).to(dtype).reshape(shape)
        check_exact(name, t, want)
        tensors[name] = t.contiguous()

    metadata = {
        "format": "pt",
        "writer": f"safetensors {safetensors.__version__}",
        "source": SOURCE,
    }
    save_file(tensors, path, metadata=metadata)

    # Read back with the same library: a fixture the reference reader
    # disagrees with would test nothing.
    back = load_file(path)
    if sorted(back) != sorted(tensors):
        sys.exit(f"read back {sorted(back)}, wrote {sorted(tensors)}")
    for name, dtype, shape, c, s in TENSORS:
        t = back[name]
        if t.dtype != dtype or tuple(t.shape) != shape:
            sys.exit(f"{name}: read back {t.dtype} {tuple(t.shape)}, "
                     f"wrote {dtype} {shape}")
        check_exact(name, t, values(shape, c, s))

    with open(path, "rb") as f:
        data = f.read()
    header_len = int.from_bytes(data[:8], "little")
    print(f"wrote {path}: {len(data)} bytes, sha256 "
          f"{hashlib.sha256(data).hexdigest()}")
    print("header:", data[8:8 + header_len].decode("utf-8").rstrip())
    print(f"written by: safetensors {safetensors.__version__}, "
          f"torch {torch.__version__}")


if __name__ == "__main__":
    main()
