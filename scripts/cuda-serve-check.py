"""lathe-serve on a GPU: six concurrent greedy completions (half streamed)
equal lathe-run's on the same artifact, under whole, chunked and layered
prefill, and layered with speculation (--speculate, the default tree). Run on the GPU machine (python3 only, no client package):

  cuda-serve-check.py LATHE_SERVE LATHE_RUN ARTIFACT

ARTIFACT: stories15M compiled with --target=cuda --prefill-groups=N (its
tokenizer included). Exits 1 on a mismatch."""
import json, re, subprocess, sys, threading, urllib.request
serve, run, art = sys.argv[1:4]
prompts = ["Once upon a time", "The little dog", "Lily and Tom went", "One day, a big bear",
           "The sun was shining and", "Sam had a red ball"]
def solo(p):
    out = subprocess.run([run, art, "--prompt", p, "-n", "40", "--temperature", "0"],
                         capture_output=True, text=True, check=True).stdout
    return out
ok = True
for policy, extra in [("whole", []), ("chunked", []), ("layered", []),
                      ("layered", ["--speculate"])]:
    proc = subprocess.Popen([serve, art, "--port", "0", "--prefill", policy] + extra,
                            stderr=subprocess.PIPE, text=True)
    policy = " ".join([policy] + extra)
    line = proc.stderr.readline(); port = int(re.search(r":(\d+) ", line).group(1))
    print(proc.stderr.readline().strip())
    base = f"http://127.0.0.1:{port}"
    results = {}
    def ask(i, p, stream):
        body = json.dumps({"model": "stories15M", "prompt": p, "max_tokens": 40, "temperature": 0, "stream": stream}).encode()
        r = urllib.request.urlopen(urllib.request.Request(base + "/v1/completions", data=body, headers={"Content-Type": "application/json"}))
        if not stream:
            results[i] = json.load(r)["choices"][0]["text"]
        else:
            text = ""
            for raw in r.read().decode().split("\n\n"):
                if raw.startswith("data: ") and raw != "data: [DONE]":
                    text += json.loads(raw[6:])["choices"][0]["text"]
            results[i] = text
    threads = [threading.Thread(target=ask, args=(i, p, i % 2 == 0)) for i, p in enumerate(prompts)]
    [t.start() for t in threads]; [t.join() for t in threads]
    same = 0
    for i, p in enumerate(prompts):
        want = solo(p)
        if results.get(i) is not None and want == p + results[i] + "\n":
            same += 1
        else:
            ok = False
            print("MISMATCH", policy, repr(p), repr(results.get(i)), repr(want))
    print(f"{policy}: {same} of {len(prompts)} concurrent answers equal lathe-run's")
    if extra:
        metrics = urllib.request.urlopen(base + "/metrics").read().decode()
        print(" ".join(l for l in metrics.splitlines() if l.startswith("lathe_speculative_")))
    proc.terminate(); proc.wait()
sys.exit(0 if ok else 1)
