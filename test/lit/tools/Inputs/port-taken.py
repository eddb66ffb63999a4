"""Runs a lathe-serve command line with --port set to a port this script
listens on, with SO_REUSEPORT (as another server may), and prints its exit
status and stderr: lathe-serve must refuse the port, not share it."""
import socket
import subprocess
import sys

listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
listener.bind(("127.0.0.1", 0))
listener.listen()
port = listener.getsockname()[1]
proc = subprocess.run(sys.argv[1:] + ["--port", str(port)], stderr=subprocess.PIPE, text=True,
                      timeout=60)
print(f"exit {proc.returncode}: {proc.stderr.strip()}")
