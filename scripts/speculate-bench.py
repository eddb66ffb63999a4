#!/usr/bin/env python3
"""Plain decoding against lathe-run --speculate on stories15M: for each
reference prompt (test/data/stories15M_reference.json) and a repetitive
text, runs plain decoding and each tree shape in turn, ROUNDS times, 200
tokens past end-of-text on 2 threads, keeps each one's best generation
tokens/s, checks that every speculative run printed plain decoding's ids,
and prints one line per mode: tokens/s, speedup and mean accepted tokens
per step for each prompt (docs/speculative.md).

    python3 scripts/speculate-bench.py build/bin/lathe-run s.lathe [SHAPES] [ROUNDS] [HISTORY] [STATE]

SHAPES is a comma-separated list (default: default,4x2x2,1x1x1x1x1x1x1x1).
HISTORY, a file of earlier texts (one per line, token ids: what lathe-run
--prompts FILE --print-ids prints), adds a warm run of each shape that
drafts from them too (--draft-history, on a fresh copy each run, so that no
run sees another's output). STATE, a drafter state (what lathe-run
--draft-state writes, e.g. after --prompts FILE --speculate over the
prompts that made HISTORY), adds warm runs whose drafter also starts from
its tables (--draft-state, a fresh copy each run).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPETITIVE = ("The dog was happy.\nThe dog was happy.\nThe dog was happy.\n"
              "The cat was sad.\nThe cat was sad.\nThe dog was happy.\n")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    run, artifact = sys.argv[1], sys.argv[2]
    shapes = (sys.argv[3] if len(sys.argv) > 3 else "default,4x2x2,1x1x1x1x1x1x1x1").split(",")
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    history = sys.argv[5] if len(sys.argv) > 5 else None
    state = sys.argv[6] if len(sys.argv) > 6 else None
    warm = [shape + "+history" for shape in shapes] if history else []
    warm += [shape + "+history+state" for shape in shapes] if history and state else []
    modes = ["plain"] + shapes + warm
    scratch = tempfile.mkdtemp()
    with open(os.path.join(ROOT, "test/data/stories15M_reference.json")) as f:
        reference = json.load(f)
    prompts = [("ref%d" % (i + 1), ["--prompt-ids", ",".join(map(str, p["prompt_ids"]))])
               for i, p in enumerate(reference["prompts"])]
    prompts.append(("repetitive", ["--prompt", REPETITIVE]))
    speed, accepted, failed = {}, {}, False
    for name, args in prompts:
        ids = {}
        for _ in range(rounds):
            for mode in modes:
                flags = [] if mode == "plain" else ["--speculate=" + mode.split("+")[0]]
                if "+history" in mode:
                    copy = os.path.join(scratch, "history.ids")
                    shutil.copyfile(history, copy)
                    flags += ["--draft-history", copy]
                if mode.endswith("+state"):
                    copy = os.path.join(scratch, "state.bin")
                    shutil.copyfile(state, copy)
                    flags += ["--draft-state", copy]
                p = subprocess.run([run, artifact] + args + ["-n", "200", "--ignore-eos",
                                    "--threads", "2", "--print-ids"] + flags,
                                   capture_output=True, text=True, check=True)
                tps = float(re.search(r"generation: \d+ tokens, ([\d.]+)", p.stderr).group(1))
                speed[name, mode] = max(speed.get((name, mode), 0.0), tps)
                a = re.search(r"([\d.]+) accepted tokens per step", p.stderr)
                accepted[name, mode] = float(a.group(1)) if a else 1.0
                ids.setdefault(mode, p.stdout)
        for mode in shapes + warm:
            if ids[mode] != ids["plain"]:
                print("MISMATCH: %s, --speculate=%s differs from plain decoding" % (name, mode))
                failed = True
    for mode in modes:
        print(mode + ": " + "; ".join(
            "%s %.0f tok/s (%.2fx, %.2f accepted)" % (
                name, speed[name, mode], speed[name, mode] / speed[name, "plain"],
                accepted[name, mode]) for name, _ in prompts))
    shutil.rmtree(scratch)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
