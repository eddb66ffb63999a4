# The two commands of the README, for root on a fresh Debian 12 machine:
#   make run    install packages, build, fetch stories15M, compile it, tell a story
#   make test   install packages, build, fetch stories15M, run every test
SHELL := /bin/bash
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
BUILD ?= $(ROOT)/build
MODEL_DIR ?= $(HOME)/.cache/lathe/models/stories15M
JOBS ?= $(shell nproc)
PROMPT ?= Once upon a time
# A clone in another folder reuses the compiler cache of this one.
export CCACHE_BASEDIR := $(ROOT)
export CCACHE_DIR ?= $(HOME)/.cache/ccache

.PHONY: run test deps build model clean

run: build model
	$(BUILD)/bin/lathe-compile $(MODEL_DIR)/stories15M.bin --tokenizer $(MODEL_DIR)/tokenizer.bin --target=cpu -o $(BUILD)/stories15M.lathe
	$(BUILD)/bin/lathe-run $(BUILD)/stories15M.lathe --prompt "$(PROMPT)" -n 200 --temperature 0.8 --top-p 0.9 --seed 42

test: build model
	cd $(BUILD) && LATHE_MODEL_DIR=$(MODEL_DIR) ctest --output-on-failure -j$(JOBS)

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
	  -DLATHE_MODEL_DIR=$(MODEL_DIR)
	cmake --build $(BUILD) -j$(JOBS)

model: deps
	@bash $(ROOT)/scripts/fetch-model.sh $(MODEL_DIR)

clean:
	rm -rf $(BUILD)
