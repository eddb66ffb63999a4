"""Starts lathe-serve on a free port, sends one chat completion, prints what
a lit test checks, and stops the server:

  serve-chat.py LATHE_SERVE ARTIFACT LATHE_TOKENIZE EXPECTED_PROMPT [SERVE_ARGS...]

Prints the server's stderr lines, the answer's object and finish reason, and
whether its usage.prompt_tokens equals the number of ids lathe-tokenize
gives EXPECTED_PROMPT without special tokens (the text the chat template
should have rendered for one user message "Hi"; \\n in it is a newline).
"""
import json
import subprocess
import sys
import urllib.request

import served

serve, artifact, tokenize, expected = sys.argv[1:5]
expected = expected.replace("\\n", "\n")
proc, base = served.start(serve, artifact, sys.argv[5:])
try:
    models = json.load(urllib.request.urlopen(base + "/v1/models"))
    body = json.dumps({"model": models["data"][0]["id"], "max_tokens": 3, "temperature": 0,
                       "messages": [{"role": "user", "content": "Hi"}]}).encode()
    request = urllib.request.Request(base + "/v1/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
    answer = json.load(urllib.request.urlopen(request))
    print("object:", answer["object"], "finish:", answer["choices"][0]["finish_reason"])
    ids = subprocess.run([tokenize, artifact, expected, "--no-special"], check=True,
                         capture_output=True, text=True).stdout.split()
    got = answer["usage"]["prompt_tokens"]
    print("prompt tokens:", "as rendered" if got == len(ids) else f"{got}, rendered {len(ids)}")
finally:
    proc.terminate()
    proc.wait(timeout=30)
