"""Flips description bytes of an artifact one at a time, fixing the checksum
each time so the damage reaches the flatbuffer verifier and the plan checks,
and runs lathe-run on every variant.

  fuzz-artifact.py ARTIFACT VOCAB [lathe-run arguments...]

Each run must either succeed and print token ids inside the vocabulary, or
fail with exit status 1, one line on stderr and nothing on stdout. Prints a
summary line, then one line per offending offset; exits 1 if any.
"""
import importlib.util
import os
import struct
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "corrupt_artifact", os.path.join(here, "corrupt-artifact.py"))
corrupt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(corrupt)


def check(variant, data, vocab, run_args):
    """None when lathe-run handled `data` acceptably, else what went wrong."""
    with open(variant, "wb") as f:
        f.write(data)
    try:
        p = subprocess.run(["lathe-run", variant] + run_args,
                           capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        # A variant that makes lathe-run hang is a finding, not a crash of
        # this script.
        return "still running after 60 s"
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    if p.returncode == 0:
        ids = out.split()
        if ids and all(i.isdigit() and int(i) < vocab for i in ids):
            return None
        return f"ran but printed {out[:80]!r}"
    if p.returncode == 1 and not out and len(err.splitlines()) == 1:
        return None
    return (f"exit status {p.returncode}, {len(err.splitlines())} stderr lines, "
            f"{len(out)} bytes of stdout: {err[-200:]!r}")


def offsets(desc_size):
    """Every byte of the first 4 KiB (config, tokenizer, tensors, plan), then
    every 37th: beyond that lies mostly the embedded CPU code, whose own
    checksum catches any flip, so a sample shows that check works."""
    return list(range(min(desc_size, 4096))) + list(range(4096, desc_size, 37))


def main():
    path, vocab, run_args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    with open(path, "rb") as f:
        original = f.read()
    desc_off, desc_size = struct.unpack_from("<2Q", original, 16)

    def variant(tmp, off):
        data = bytearray(original)
        data[desc_off + off] ^= 0xFF
        desc = bytes(data[desc_off:desc_off + desc_size])
        struct.pack_into("<Q", data, 48, corrupt.checksum(desc))
        name = os.path.join(tmp, f"variant{off}.lathe")
        problem = check(name, bytes(data), vocab, run_args)
        os.remove(name)
        return off, problem

    with tempfile.TemporaryDirectory() as tmp:
        # One worker per core: more only queue the processes and stretch
        # each one's wall time towards the timeout on a loaded machine.
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            results = list(pool.map(lambda off: variant(tmp, off), offsets(desc_size)))
    bad = [f"offset {off}: {problem}" for off, problem in results if problem]
    print(f"{desc_size} variants, {len(bad)} mishandled")
    for line in bad:
        print(line)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
