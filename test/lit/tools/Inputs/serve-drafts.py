"""Starts lathe-serve on a free port, asks for one greedy completion of each
prompt, stops the server with SIGTERM and prints its stderr lines (the
listening and ready lines, then what it printed while stopping), and each
answer's text as JSON, and the drafts the server accepted (its /metrics):

  serve-drafts.py LATHE_SERVE ARTIFACT MAX_TOKENS PROMPT[;PROMPT...] [SERVE_ARGS...]
"""
import json
import re
import sys
import urllib.request

import served

serve, artifact, max_tokens, prompts = sys.argv[1:5]
proc, base = served.start(serve, artifact, sys.argv[5:])
answers = []
try:
    models = json.load(urllib.request.urlopen(base + "/v1/models"))
    for prompt in prompts.split(";"):
        body = json.dumps({"model": models["data"][0]["id"], "prompt": prompt,
                           "max_tokens": int(max_tokens), "temperature": 0}).encode()
        request = urllib.request.Request(base + "/v1/completions", data=body,
                                         headers={"Content-Type": "application/json"})
        answers.append(json.load(urllib.request.urlopen(request))["choices"][0]["text"])
    metrics = urllib.request.urlopen(base + "/metrics").read().decode()
    accepted = re.search(r"^lathe_speculative_accepted_tokens_total (\S+)$", metrics, re.M)
finally:
    proc.terminate()
    _, rest = proc.communicate(timeout=60)
print(rest, end="")
print("exit:", proc.returncode)
for answer in answers:
    print("answer:", json.dumps(answer))
if accepted:
    print("accepted drafts:", int(float(accepted.group(1))))
