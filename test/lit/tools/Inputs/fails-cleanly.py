"""Runs a command that must reject its input cleanly, and prints its stderr.

  fails-cleanly.py [--stderr-lines N|N-M] [--memory-limit-mb MB] -- COMMAND ARGS...

Passes (exit 0, the command's stderr copied to stdout for FileCheck) only when
the command exits with status exactly 1 (not a crash: a signal, an abort or
any other status fails), writes nothing to stdout, and writes exactly N lines
to stderr (default 1; N-M allows N to M lines). Otherwise it says what went wrong and exits 1.
--memory-limit-mb caps the command's address space (RLIMIT_AS) so that an
attempt to allocate something huge fails at once on every machine, whatever
its overcommit policy, instead of swapping or waking the OOM killer.
"""
import argparse
import resource
import subprocess
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--stderr-lines", default="1")
    parser.add_argument("--memory-limit-mb", type=int, default=0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command")

    def limit():
        if args.memory_limit_mb:
            size = args.memory_limit_mb << 20
            resource.setrlimit(resource.RLIMIT_AS, (size, size))

    try:
        proc = subprocess.run(command, stdin=subprocess.DEVNULL,
                              capture_output=True, preexec_fn=limit, timeout=300)
    except subprocess.TimeoutExpired:
        sys.exit("fails-cleanly: error: timed out after 300 s: " + " ".join(command))
    stderr = proc.stderr.decode("utf-8", "replace")
    problems = []
    if proc.returncode < 0:
        problems.append(f"killed by signal {-proc.returncode}")
    elif proc.returncode != 1:
        problems.append(f"exit status {proc.returncode}, expected 1")
    if proc.stdout:
        problems.append(f"{len(proc.stdout)} bytes on stdout, expected none: "
                        f"{proc.stdout[:200]!r}")
    lines = stderr.splitlines()
    low, _, high = args.stderr_lines.partition("-")
    if not int(low) <= len(lines) <= int(high or low) or (
            stderr and not stderr.endswith("\n")):
        problems.append(f"{len(lines)} lines on stderr, expected "
                        f"{args.stderr_lines} newline-terminated")
    if problems:
        sys.stdout.write("fails-cleanly: error: " + "; ".join(problems) + "\n")
        sys.stdout.write("fails-cleanly: stderr was:\n" + stderr)
        sys.exit(1)
    sys.stdout.write(stderr)


if __name__ == "__main__":
    main()
