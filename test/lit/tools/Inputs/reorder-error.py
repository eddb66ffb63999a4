"""Checks docs/quantization.md's claim for --quant=FORMAT:reorder on a Llama.

lathe-reorder-channels gives every set of channels one permutation, chosen
among candidate orders and the current one by the smallest calibrated error
of the weights that read the set, "so it never increases that error". The
error of one weight is its report's "output err." (calibrated relative
output error e); the pass compares sum(e^2) over the readers of a set.
Rows of a weight are quantized independently, so e depends only on the order
of its columns, the channels it reads. In a Llama those sets are:
  - the residual stream (through the adds and RMSNorms), read by wq, wk, wv,
    w1 and w3 of every layer;
  - per layer, the attention value channels, read by wo;
  - per layer, the MLP hidden channels, read by w2.

The report prints e to 6 decimals. Rounding is monotonic, so a set read by
one weight keeps its order exactly; for the residual stream the rounding
(below 3e-5 in all on a sum near 0.5) is far below the gains measured.

Usage: reorder-error.py PLAIN_REPORT REORDERED_REPORT. Both reports come from
the same model and calibration text. Fails (exit 1) if the reports list
different tensors or formats, if an error is missing, if any set's sum(e^2)
grows, or if no set's shrinks (reordering did nothing).
"""
import sys


def read_report(path):
    weights = {}
    with open(path) as f:
        for line in f:
            fields = line.split()
            if len(fields) == 6 and fields[0].startswith("layers."):
                name, shape, fmt, bits, _, out_err = fields
                if out_err == "-":
                    sys.exit(f"{path}: {name} has no calibrated error")
                weights[name] = (shape, fmt, bits, float(out_err))
    if not weights:
        sys.exit(f"{path}: no layer weights in the report")
    return weights


def channel_set(name):
    layer, proj = name.rsplit(".", 1)
    if proj == "wo":
        return f"{layer} attention values"
    if proj == "w2":
        return f"{layer} MLP hidden"
    if proj in ("wq", "wk", "wv", "w1", "w3"):
        return "residual stream"
    sys.exit(f"unexpected linear weight {name}")


plain, reordered = read_report(sys.argv[1]), read_report(sys.argv[2])
if plain.keys() != reordered.keys():
    sys.exit("the reports list different weights")
sums = {}
for name, (shape, fmt, bits, err) in plain.items():
    if reordered[name][:3] != (shape, fmt, bits):
        sys.exit(f"{name}: {reordered[name][:3]} after reordering, {(shape, fmt, bits)} before")
    pair = sums.setdefault(channel_set(name), [0.0, 0.0])
    pair[0] += err**2
    pair[1] += reordered[name][3] ** 2

worse = [s for s, (b, a) in sums.items() if a > b]
lower = [s for s, (b, a) in sums.items() if a < b]
for s, (b, a) in sorted(sums.items()):
    print(f"{s}: sum e^2 {b:.6f} -> {a:.6f}")
print(f"{len(sums)} channel sets, {len(worse)} with a larger error, {len(lower)} with a smaller one")
if worse:
    sys.exit("reordering increased the calibrated error of: " + ", ".join(worse))
if not lower:
    sys.exit("reordering lowered no set's error: did it run?")
