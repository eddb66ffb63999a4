# lit configuration for Lathe's FileCheck tests.
import os
import lit.formats
from lit.llvm import llvm_config

config.name = "Lathe"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.lathe_binary_dir, "test", "lit")
config.excludes = ["lit.cfg.py", "lit.site.cfg.py", "Inputs"]

llvm_config.use_default_substitutions()
config.substitutions.append(("%model_dir", config.lathe_model_dir))
config.substitutions.append(("%python", config.python_executable))
config.substitutions.append(("%inputs", os.path.join(config.test_source_root, "Inputs")))
config.environment["LATHE_MODEL_DIR"] = config.lathe_model_dir
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.lathe_tools_dir, append_path=True)
if os.path.isfile(os.path.join(config.lathe_model_dir, "stories15M.bin")):
    config.available_features.add("model")
# The Hugging Face tokenizers scripts/fetch-tokenizers.sh fetches.
config.substitutions.append(("%tokenizer_dir", config.lathe_tokenizer_dir))
if all(os.path.isfile(os.path.join(config.lathe_tokenizer_dir, name, "tokenizer.json"))
       for name in ("llama2", "qwen3")):
    config.available_features.add("hf-tokenizers")
# The cuda target builds with nvcc (where lathe-compile looks for it); a
# machine with the CUDA driver runs its artifacts instead of refusing them.
import ctypes
import shutil
if os.path.isfile("/usr/local/cuda/bin/nvcc") or shutil.which("nvcc"):
    config.available_features.add("nvcc")
try:
    ctypes.CDLL("libcuda.so.1")
    config.available_features.add("cuda-driver")
except OSError:
    pass
