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
# Upstream mlir-opt with Lathe's plugin (tools/lathe-plugin).
config.substitutions.append(("%mlir_opt", os.path.join(config.llvm_tools_dir, "mlir-opt")))
config.substitutions.append(
    ("%lathe_plugin", os.path.join(config.lathe_binary_dir, "lib", "LathePlugin.so")))
# An outside project built against this build, installed (examples/integrate):
# with the generator and compilers of this build.
config.substitutions.append(("%lathe_source_dir", config.lathe_source_dir))
config.substitutions.append(("%lathe_build_dir", config.lathe_binary_dir))
config.substitutions.append(("%cmake_toolchain", '-G "%s" -DCMAKE_MAKE_PROGRAM=%s '
                             "-DCMAKE_C_COMPILER=%s -DCMAKE_CXX_COMPILER=%s" % (
                                 config.cmake_generator, config.cmake_make_program,
                                 config.c_compiler, config.cxx_compiler)))
config.substitutions.append(("%cmake", config.cmake_command))
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
