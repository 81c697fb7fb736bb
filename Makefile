# Front end for the CMake build: `make demo` and `make test` work on a fresh Debian 12 machine.
BUILD    ?= build
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
SHARED   ?= $(abspath ../shared)
MODEL    ?= $(SHARED)/models/tinystories-656k
PROMPT   ?= Once upon a time
# TinyStories writes its end marker as text before its EOS token; the demo stops there.
DEMO_FLAGS ?= --stop '<|end_story|>'
CMAKE_FLAGS ?=
PREFIX   ?= /usr/local
NANOVLLM := $(BUILD)/bin/nanovllm

.PHONY: all deps configure build test demo bench install clean format

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DNANOVLLM_SHARED_DIR=$(SHARED) $(CMAKE_FLAGS)

configure: $(BUILD)/CMakeCache.txt

build: deps configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 900

demo: build
	@if [ ! -f "$(MODEL)/config.json" ]; then \
	  echo "demo: no checkpoint at $(MODEL)."; \
	  echo "Download one from the Hugging Face hub, e.g."; \
	  echo "  pip install -U huggingface_hub && huggingface-cli download raincandy-u/TinyStories-656K --local-dir models/tinystories-656k"; \
	  echo "then run: make demo MODEL=models/tinystories-656k"; \
	  exit 1; \
	fi
	$(NANOVLLM) generate --model "$(MODEL)" --prompt "$(PROMPT)" --max-tokens 200 --temperature 0 $(DEMO_FLAGS)

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
