"""A lathe-serve process for the lit tests' scripts: started on a free port,
its listening and ready lines printed, and returned once it serves the
model (the ready line comes just before the model is set, so /health is
asked until it answers 200)."""
import re
import subprocess
import time
import urllib.error
import urllib.request


def start(serve, artifact, args):
    """Returns (process, base URL); the caller terminates the process."""
    proc = subprocess.Popen([serve, artifact, "--port", "0", *args],
                            stderr=subprocess.PIPE, text=True)
    try:
        listening = proc.stderr.readline()
        print(listening, end="")
        port = int(re.search(r"127\.0\.0\.1:(\d+)", listening).group(1))
        base = f"http://127.0.0.1:{port}"
        print(proc.stderr.readline(), end="")  # ready
        for _ in range(600):
            try:
                urllib.request.urlopen(base + "/health")
                break
            except urllib.error.HTTPError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"{serve} never answered /health with 200 (30 s)")
    except BaseException:
        proc.kill()
        raise
    return proc, base
