"""Fixtures for the Python package's tests (scripts/run-python-tests.sh runs them against the
package installed into a fresh venv, never the source tree).

Models: the real TinyStories-656K from ../shared, and for chat a random-weight Qwen3-shaped
checkpoint made with `nanovllm make-model` around the real Qwen3 tokenizer and chat template.
The `nanovllm` command ($NANOVLLM_BIN) is the oracle the Python results are compared with.
"""
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(os.environ.get("NANOVLLM_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "common"))
from tiny_models import make_qwen3_tiny  # noqa: E402
SHARED = pathlib.Path(os.environ.get("NANOVLLM_SHARED_DIR", ROOT.parent / "shared"))
STORIES = SHARED / "models" / "tinystories-656k"
# Small and fixed, so that results do not depend on the machine's memory.
ENGINE = dict(kv_cache_memory=32 << 20, threads=2)


def nanovllm_bin():
    path = os.environ.get("NANOVLLM_BIN", str(ROOT / "build" / "bin" / "nanovllm"))
    assert os.path.exists(path), f"nanovllm binary not found at {path} (set NANOVLLM_BIN)"
    return path


def pytest_sessionstart(session):
    import nanovllm
    where = pathlib.Path(nanovllm.__file__).resolve()
    assert ROOT / "python" not in where.parents, f"tests must import the installed package, not {where}"
    assert STORIES.joinpath("config.json").exists(), f"no TinyStories-656K under {SHARED}"


@pytest.fixture(scope="session")
def stories():
    from nanovllm import LLM
    return LLM(str(STORIES), **ENGINE)


@pytest.fixture(scope="session")
def chat_model(tmp_path_factory):
    """A random-weight Qwen3-shaped checkpoint with the real Qwen3 tokenizer and chat template."""
    return make_qwen3_tiny(nanovllm_bin(), SHARED, tmp_path_factory.mktemp("qwen3-tiny"))
