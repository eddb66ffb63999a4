# The two commands of the README, for root on a fresh Debian 12 machine:
#   make run    install packages, build, fetch stories15M, compile it, tell a story
#   make test   install packages, build, fetch stories15M (and the Hugging
#               Face tokenizers the tokenizer tests compare with, and OpenAI's
#               Node.js client the server's load test drives), run every test
#               (then the runtime's unit tests again under ASan + UBSan, and
#               each loader's fuzz target for a few seconds)
#   make fuzz   each loader's fuzz target for FUZZ_SECONDS (600) in turn
SHELL := /bin/bash
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
BUILD ?= $(ROOT)/build
SANITIZE_BUILD ?= $(ROOT)/build-sanitize
FUZZ_BUILD ?= $(ROOT)/build-fuzz
FUZZ_SECONDS ?= 600
MODEL_DIR ?= $(HOME)/.cache/lathe/models/stories15M
TOKENIZER_DIR ?= $(HOME)/.cache/lathe/tokenizers
JOBS ?= $(shell nproc)
PROMPT ?= Once upon a time
# A clone in another folder reuses the compiler cache of this one.
export CCACHE_BASEDIR := $(ROOT)
export CCACHE_DIR ?= $(HOME)/.cache/ccache

.PHONY: run test deps build model sanitize fuzz fuzz-build clean

run: build model
	$(BUILD)/bin/lathe-compile $(MODEL_DIR)/stories15M.bin --tokenizer $(MODEL_DIR)/tokenizer.bin --target=cpu -o $(BUILD)/stories15M.lathe
	$(BUILD)/bin/lathe-run $(BUILD)/stories15M.lathe --prompt "$(PROMPT)" -n 200 --temperature 0.8 --top-p 0.9 --seed 42

test: build model
	cd $(BUILD) && LATHE_MODEL_DIR=$(MODEL_DIR) LATHE_TOKENIZER_DIR=$(TOKENIZER_DIR) ctest --output-on-failure -j$(JOBS)
	$(MAKE) sanitize
	$(MAKE) fuzz FUZZ_SECONDS=5 FUZZ_JOBS=$(JOBS)

# The runtime (no MLIR) and its unit tests built with AddressSanitizer and
# UndefinedBehaviorSanitizer: out-of-bounds reads in kernels and loaders,
# leaks, overflow and bad conversions fail the run.
sanitize: deps
	cmake -S $(ROOT) -B $(SANITIZE_BUILD) -G Ninja \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLATHE_ENABLE_COMPILER=OFF \
	  -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
	  -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
	  "-DCMAKE_CXX_FLAGS=-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	  "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined -fuse-ld=lld" \
	  "-DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=address,undefined -fuse-ld=lld"
	cmake --build $(SANITIZE_BUILD) -j$(JOBS)
	cd $(SANITIZE_BUILD) && ctest --output-on-failure -j$(JOBS)

# The loaders' libFuzzer targets (test/fuzz, docs/reliability.md), built with
# ASan + UBSan like the sanitize build. Each one fuzzes for FUZZ_SECONDS,
# FUZZ_JOBS (1) at a time, from seeds made of the fetched models (and of
# artifacts compiled by $(BUILD)'s lathe-compile) and the corpus earlier runs
# left in $(FUZZ_BUILD)/fuzz/corpus; inputs that crash go to .../fuzz/crashes.
FUZZ_JOBS ?= 1
fuzz: build model fuzz-build
	cd $(FUZZ_BUILD) && FUZZ_SECONDS=$(FUZZ_SECONDS) ctest --output-on-failure \
	  -j$(FUZZ_JOBS) --timeout $$(( 2 * $(FUZZ_SECONDS) + 300 ))

fuzz-build: deps
	cmake -S $(ROOT) -B $(FUZZ_BUILD) -G Ninja \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLATHE_ENABLE_COMPILER=OFF \
	  -DLATHE_ENABLE_TESTS=OFF -DLATHE_ENABLE_FUZZERS=ON \
	  -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
	  -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
	  "-DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	  "-DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	  "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined -fuse-ld=lld" \
	  "-DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=address,undefined -fuse-ld=lld" \
	  -DLATHE_MODEL_DIR=$(MODEL_DIR) -DLATHE_TOKENIZER_DIR=$(TOKENIZER_DIR) \
	  -DLATHE_COMPILE=$(BUILD)/bin/lathe-compile
	cmake --build $(FUZZ_BUILD) --target lathe-fuzzers -j$(JOBS)

deps:
	@bash $(ROOT)/scripts/install-deps.sh

build: deps
	cmake -S $(ROOT) -B $(BUILD) -G Ninja \
	  -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
	  -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
	  -DLLVM_USE_LINKER=lld \
	  -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
	  -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit \
	  -DLATHE_MODEL_DIR=$(MODEL_DIR) \
	  -DLATHE_TOKENIZER_DIR=$(TOKENIZER_DIR)
	cmake --build $(BUILD) -j$(JOBS)

model: deps
	@bash $(ROOT)/scripts/fetch-model.sh $(MODEL_DIR)
	@bash $(ROOT)/scripts/fetch-tokenizers.sh $(TOKENIZER_DIR)
	@bash $(ROOT)/scripts/fetch-openai-client.sh $(HOME)/.cache/lathe/node

clean:
	rm -rf $(BUILD) $(SANITIZE_BUILD) $(FUZZ_BUILD)
