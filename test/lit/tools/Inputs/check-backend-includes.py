"""Checks that a backend is reached only through the backend interface:
no file outside a backend's folder includes that folder's headers, except
the few places named here, each with its reason.

  check-backend-includes.py REPO_ROOT

Prints every offending include as FILE:LINE: HEADER and exits 1 if any.
"""
import os
import re
import sys

# header prefix -> folders (or files) allowed to include it
ALLOWED = {
    "runtime/backends/cpu/": [
        "runtime/backends/cpu/",            # the backend itself
        "runtime/backends/Backends.cpp",    # the one registry of backends
        "test/unit/runtime/backends/cpu/",  # its unit tests
        "tools/lathe-microbench/",          # benchmarks of its kernels
        # the HLS int8 products, held to the CPU's integer kernel bit for bit
        "test/unit/codegen/HlsInt8ProductsTest.cpp",
        # int8-activation GPU builds held to the CPU's integer kernels,
        # which run the same cuda plan only when loaded directly
        "test/unit/runtime/backends/cuda/CudaBackendTest.cpp",
    ],
    # The C ABI between the generated CPU code and the backend: the codegen
    # side pastes it into every model's source.
    "runtime/backends/cpu/native/CpuModelAbi": ["codegen/CPU/"],
    "runtime/backends/cuda/": [
        "runtime/backends/cuda/",
        "runtime/backends/Backends.cpp",
        "test/unit/runtime/backends/cuda/",
    ],
    # The frame and launch table shared by the generated CUDA code and the
    # backend, and the kernel templates that code instantiates.
    "runtime/backends/cuda/kernels/": ["codegen/CUDA/"],
    # The GPU's weight layouts: the generator chooses a tensor's, the
    # executable makes it, by one definition of which tensors take which.
    "runtime/backends/cuda/CudaWeightLayout.h": ["codegen/CUDA/"],
    # The C ABI between the generated host schedule and the backend, which
    # the codegen side pastes into every schedule's source; and the
    # schedule's loader, which its generator's test loads it with.
    "runtime/backends/cuda/schedule/CudaScheduleAbi.h": ["codegen/CUDA/"],
    "runtime/backends/cuda/schedule/CudaSchedule.h": [
        "test/unit/codegen/CUDA/EmitCudaScheduleTest.cpp"],
}

INCLUDE = re.compile(r'^\s*#\s*include\s*["<]([^">]+)[">]')
SOURCES = (".h", ".hpp", ".cpp", ".cc", ".c", ".in", ".cu", ".cuh")
SKIP = {"build", "build-sanitize", ".git"}


def allowed(path, header):
    """Allowed unless a rule covers the header and none of its places does
    the including file."""
    rules = [places for prefix, places in ALLOWED.items() if header.startswith(prefix)]
    return not rules or any(path.startswith(p) for places in rules for p in places)


def main():
    root = os.path.abspath(sys.argv[1])
    bad = []
    checked = 0
    for top in ("runtime", "compiler", "codegen", "passes", "dialects", "tools", "test",
                "examples"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames[:] = [d for d in dirnames if d not in SKIP]
            for name in filenames:
                if not name.endswith(SOURCES):
                    continue
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, root)
                checked += 1
                with open(full, encoding="utf-8", errors="replace") as f:
                    for lineno, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if m and not allowed(rel, m.group(1)):
                            bad.append(f"{rel}:{lineno}: {m.group(1)}")
    for b in bad:
        print(b)
    print(f"checked {checked} files, {len(bad)} backend includes outside the interface")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
