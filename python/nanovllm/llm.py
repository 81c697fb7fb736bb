"""LLM, SamplingParams, the tokenizer, streaming and AsyncLLM over the C++ engine (_core).

The C++ side steps the engine without the GIL and checks for Ctrl-C between steps; this module
maps nano-vllm's and vLLM's arguments onto it and shapes what comes back as they do.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import random
import re
import sys
from typing import Any, AsyncIterator, Callable, Dict, Iterator, List, Optional, Sequence, Union

from . import _core

Prompt = Union[str, List[int], Dict[str, Any]]
Message = Dict[str, Any]


def _unexpected(owner: str, name: str, known: Sequence[str]) -> TypeError:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return TypeError(f"{owner}() got an unexpected keyword argument {name!r}{hint}")


def _set_field(obj: Any, owner: str, name: str, value: Any) -> None:
    """setattr with a message that names the field (nanobind's names only the setter's types)."""
    try:
        setattr(obj, name, value)
    except TypeError as e:
        m = re.search(r"arg: ([^,/)]+)", str(e))
        expected = m.group(1).strip() if m else "another type"
        raise TypeError(f"{owner}(): {name} must be {expected}, got {type(value).__name__} {value!r:.60}") from None


def _fields(cls: type) -> List[str]:
    """The attributes the C++ binding gives a struct: every field, and only fields."""
    return sorted(n for n, v in vars(cls).items() if not n.startswith("_") and not callable(v))


class StructuredOutputsParams(_core.StructuredOutputs):
    """vLLM's StructuredOutputsParams: at most one constraint the output is decoded under.

    json: a JSON schema as text, a dict, or a pydantic model (anything with model_json_schema());
    json_object: any JSON object; regex: a regular expression (Rust regex syntax); choice: one
    of these strings; grammar: a Lark grammar (llguidance) or GBNF. Two at once raise ValueError;
    an invalid schema or grammar raises ValueError when the request is added.
    """

    _FIELDS = _fields(_core.StructuredOutputs)

    def __init__(self, json: Any = None, json_object: Optional[bool] = None, regex: Optional[str] = None,
                 choice: Optional[Sequence[str]] = None, grammar: Optional[str] = None) -> None:
        super().__init__()
        if json is not None:
            _set_field(self, "StructuredOutputsParams", "json", _schema_text(json))
        if json_object is not None:
            _set_field(self, "StructuredOutputsParams", "json_object", json_object)
        if regex is not None:
            _set_field(self, "StructuredOutputsParams", "regex", regex)
        if choice is not None:
            _set_field(self, "StructuredOutputsParams", "choice", list(choice))
        if grammar is not None:
            _set_field(self, "StructuredOutputsParams", "grammar", grammar)
        self.validate()

    def __repr__(self) -> str:
        return _structured_repr(self)


# vLLM's name before 0.11 (SamplingParams(guided_decoding=GuidedDecodingParams(...))).
GuidedDecodingParams = StructuredOutputsParams


def _schema_text(schema: Any) -> str:
    """A JSON schema as the engine takes it: text. Dicts are serialised, pydantic models (or
    anything with model_json_schema()) give their schema; text is passed on as it is."""
    if isinstance(schema, str):
        return schema
    if hasattr(schema, "model_json_schema"):
        schema = schema.model_json_schema()
    return _to_json(schema, "structured_outputs.json")


def _structured_repr(s: _core.StructuredOutputs) -> str:
    # Only the fields that are set, as vLLM's dataclass repr would show the non-None ones.
    set_fields = [f"{n}={getattr(s, n)!r}" for n in StructuredOutputsParams._FIELDS if getattr(s, n)]
    return "StructuredOutputsParams(" + ", ".join(set_fields) + ")"


def _structured_outputs(value: Any) -> _core.StructuredOutputs:
    """SamplingParams(structured_outputs=...): the params object, a dict of its fields, or None."""
    if value is None:
        return _core.StructuredOutputs()
    if isinstance(value, dict):
        return StructuredOutputsParams(**value)
    return value


class SamplingParams(_core.SamplingParams):
    """vLLM's SamplingParams: every field of the C++ one, validated as it is (ValueError).

    temperature=0 is greedy. stop may be a string or a list of strings.
    """

    _FIELDS = _fields(_core.SamplingParams)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        for name, value in kwargs.items():
            if name == "guided_decoding":  # vLLM's older name
                name = "structured_outputs"
            if name not in self._FIELDS:
                raise _unexpected("SamplingParams", name, self._FIELDS)
            if name == "stop" and isinstance(value, str):
                value = [value]
            if name == "stop_token_ids" and value is None:
                value = []
            if name == "structured_outputs":
                value = _structured_outputs(value)
            _set_field(self, "SamplingParams", name, value)
        self.validate()

    def __repr__(self) -> str:
        def show(name: str) -> str:
            value = getattr(self, name)
            return _structured_repr(value) if name == "structured_outputs" else repr(value)
        return "SamplingParams(" + ", ".join(f"{n}={show(n)}" for n in self._FIELDS) + ")"


def _copy_params(p: _core.SamplingParams) -> _core.SamplingParams:
    return p.__copy__()


class Tokenizer:
    """llm.tokenizer: encode, decode and apply_chat_template with the checkpoint's own files."""

    def __init__(self, engine: _core.Engine) -> None:
        self._engine = engine

    @property
    def vocab_size(self) -> int:
        return self._engine.vocab_size

    @property
    def bos_token_id(self) -> Optional[int]:
        return self._engine.bos_token_id

    @property
    def eos_token_id(self) -> Optional[int]:
        return self._engine.eos_token_id

    def encode(self, text: str, add_special_tokens: bool = True) -> List[int]:
        if not isinstance(text, str):
            raise TypeError(f"encode() takes a str, got {type(text).__name__}")
        return self._engine.encode(text, add_special_tokens)

    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self._engine.decode(list(token_ids), skip_special_tokens)

    def apply_chat_template(self, messages: List[Message], tokenize: bool = True,
                            add_generation_prompt: bool = False, tools: Optional[List[Any]] = None,
                            **template_kwargs: Any) -> Union[str, List[int]]:
        """transformers' signature: ids by default, the text with tokenize=False. Keyword
        arguments it does not know (enable_thinking=False, ...) are template variables."""
        text = self._engine.apply_chat_template(_to_json(messages, "messages"), add_generation_prompt,
                                                _to_json(template_kwargs, "template arguments"),
                                                _to_json(tools, "tools"))
        # The template already holds BOS and the like: add no special tokens twice (as vLLM).
        return self.encode(text, add_special_tokens=False) if tokenize else text


def _to_json(value: Any, what: str) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{what} must be JSON-serialisable: {e}") from None


def _is_token_ids(x: Any) -> bool:
    return isinstance(x, (list, tuple)) and all(isinstance(t, int) and not isinstance(t, bool) for t in x)


class LLM:
    """nano-vllm's LLM(model, **kwargs) on the CPU.

    Engine arguments (nano-vllm's and vLLM's names): max_num_batched_tokens, max_num_seqs,
    long_prefill_token_threshold,
    max_model_len, enable_prefix_caching, kvcache_block_size / block_size, num_kvcache_blocks,
    kv_cache_dtype ("auto", "bfloat16"/"bf16", "float32"/"f32"), kv_cache_memory (bytes),
    kv_cache_memory_fraction, quantization (None or "int8"), seed, threads, backend,
    allow_long_max_model_len.

    dtype and device: with backend="torch", its options (device "cpu" or "cuda[:N]", dtype
    "f32"/"bf16"/"f16"); on the native backend dtype "auto" only (weights stay in their stored
    dtype) and device "cpu"/"auto".

    Accepted for compatibility: tensor_parallel_size (1 only), enforce_eager (there are no CUDA
    graphs to skip), gpu_memory_utilization (ignored: the KV cache on the CPU is sized by
    kv_cache_memory / kv_cache_memory_fraction, since RAM is shared with everything else),
    trust_remote_code, tokenizer (the model folder's own only), swap_space.
    Any other keyword raises TypeError naming it.
    """

    _CONFIG_NAMES = {"kvcache_block_size": "block_size", "num_kvcache_blocks": "num_kv_blocks",
                     "kv_cache_memory": "kv_cache_bytes"}
    _IGNORED = {"enforce_eager", "gpu_memory_utilization", "trust_remote_code", "swap_space",
                "disable_log_stats", "tokenizer_mode"}
    _KV_DTYPES = {"auto": "bf16", "bf16": "bf16", "bfloat16": "bf16", "f32": "f32", "fp32": "f32",
                  "float32": "f32", "float": "f32"}

    def __init__(self, model: str, **kwargs: Any) -> None:
        if not isinstance(model, str):
            model = str(model) if hasattr(model, "__fspath__") else model
        if not isinstance(model, str):
            raise TypeError(f"LLM() model must be a path, got {type(model).__name__}")
        config = self._config(model, kwargs)
        self._engine = _core.Engine(model, config)
        self._tokenizer = Tokenizer(self._engine) if self._engine.has_tokenizer else None

    def _config(self, model: str, kwargs: Dict[str, Any]) -> _core.Config:
        config = _core.Config()
        fields = _fields(_core.Config)
        known = sorted(set(fields) | set(self._CONFIG_NAMES) | self._IGNORED |
                       {"dtype", "device", "tensor_parallel_size", "seed", "tokenizer"})
        seed = None
        backend_options: Dict[str, str] = {}  # device= and dtype=, for the backend that has them
        for name, value in kwargs.items():
            if name in self._IGNORED:
                continue
            if name in ("dtype", "device"):
                if value not in ("auto", None):
                    backend_options[name] = str(value)
            elif name == "tensor_parallel_size":
                if value != 1:
                    raise ValueError(f"tensor_parallel_size={value!r}: only 1 (one process on the CPU)")
            elif name == "tokenizer":
                if value not in (None, model):
                    raise ValueError("tokenizer: only the model folder's own tokenizer.json is used")
            elif name == "seed":
                seed = value
            elif name == "kv_cache_dtype":
                if value not in self._KV_DTYPES:
                    raise ValueError(f"kv_cache_dtype={value!r}: one of {sorted(self._KV_DTYPES)}")
                config.kv_cache_dtype = self._KV_DTYPES[value]
            elif name == "quantization":
                config.quantization = "" if value is None else value
            elif name in fields or name in self._CONFIG_NAMES:
                _set_field(config, "LLM", self._CONFIG_NAMES.get(name, name), value)
            else:
                raise _unexpected("LLM", name, known)
        self._set_backend_options(config, backend_options)
        config.validate()
        # Requests without their own seed draw one from this generator, so seed=N makes a whole
        # run repeatable as in vLLM; without it each request gets a fresh one from the engine.
        self._rng = random.Random(seed) if seed is not None else None
        return config

    @staticmethod
    def _set_backend_options(config: _core.Config, options: Dict[str, str]) -> None:
        """device= and dtype= are the torch backend's options (backend="torch"); the native
        backend runs on the CPU with the checkpoint's own dtype."""
        if config.backend == "native":
            if options.get("device", "cpu") != "cpu":
                raise ValueError(f"device={options['device']!r}: the native backend runs on the CPU "
                                 "('cpu' or 'auto'); backend='torch' runs on CUDA")
            if "dtype" in options:
                raise ValueError(f"dtype={options['dtype']!r}: only 'auto' on the native backend (weights stay "
                                 "in the checkpoint's dtype; quantization='int8' rounds them to int8)")
            return
        config.backend_options = options  # the backend refuses what it does not have, naming it

    # --- what nano-vllm and vLLM expose -------------------------------------------------

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            raise ValueError("this checkpoint has no tokenizer.json: pass token ids")
        return self._tokenizer

    def get_tokenizer(self) -> Tokenizer:
        return self.tokenizer

    def get_default_sampling_params(self) -> _core.SamplingParams:
        """SamplingParams() overlaid with the model's generation_config.json, as vLLM's."""
        return self._engine.default_sampling_params()

    @property
    def max_model_len(self) -> int:
        """The context served: the configured or the model's length, shrunk to the KV cache."""
        return self._engine.max_model_len

    @property
    def vocab_size(self) -> int:
        """Rows of the model's logits: prompt token ids must be below it."""
        return self._engine.vocab_size

    def generate(self, prompts: Union[Prompt, Sequence[Prompt]],
                 sampling_params: Union[None, _core.SamplingParams, Sequence[_core.SamplingParams]] = None,
                 use_tqdm: bool = True) -> List[Dict[str, Any]]:
        """Runs the prompts (strings, token-id lists, or {"prompt"} / {"prompt_token_ids"}
        dicts) to the end. Returns one dict per prompt in input order: text, token_ids,
        finish_reason ("stop", "length"), stop_reason, prompt_token_ids, num_cached_tokens,
        and logprobs ([{token id: logprob}] per token) when sampling_params.logprobs is set.
        Ctrl-C aborts the requests of this call and leaves the engine usable."""
        ids = self._prompt_ids(prompts)
        params = self._params(sampling_params, len(ids))
        bar = _progress_bar(len(ids)) if use_tqdm and len(ids) > 0 else None
        try:
            return self._engine.generate(ids, params, bar.update if bar else None)
        finally:
            if bar:
                bar.close()

    def chat(self, messages: Union[List[Message], List[List[Message]]],
             sampling_params: Union[None, _core.SamplingParams, Sequence[_core.SamplingParams]] = None,
             use_tqdm: bool = True, chat_template_kwargs: Optional[Dict[str, Any]] = None,
             add_generation_prompt: bool = True, tools: Optional[List[Any]] = None) -> List[Dict[str, Any]]:
        """vLLM's chat: one conversation (a list of messages) or a list of them, through the
        model's chat template; outputs as generate's."""
        conversations = [messages] if messages and isinstance(messages[0], dict) else messages
        prompts = [self.tokenizer.apply_chat_template(c, tokenize=True, add_generation_prompt=add_generation_prompt,
                                                      tools=tools, **(chat_template_kwargs or {}))
                   for c in conversations]
        return self.generate(prompts, sampling_params, use_tqdm)

    def stream(self, prompt: Prompt, sampling_params: Optional[_core.SamplingParams] = None) -> "Stream":
        """An iterator of deltas of one request: {"text", "token_ids", "finished",
        "finish_reason", "stop_reason"} (+ "logprobs"), the text and ids new since the last.
        Other threads' generate() calls and streams share its engine steps."""
        ids = self._prompt_ids([prompt])
        params = self._params(sampling_params, 1)[0]
        return Stream(self._engine, self._engine.add_request(ids[0], params), params.logprobs is not None)

    # --- helpers --------------------------------------------------------------------------

    def _prompt_ids(self, prompts: Union[Prompt, Sequence[Prompt]]) -> List[List[int]]:
        if isinstance(prompts, (str, dict)) or (_is_token_ids(prompts) and len(prompts) > 0):
            prompts = [prompts]  # one prompt (vLLM takes a bare one too)
        if not isinstance(prompts, (list, tuple)):
            raise TypeError(f"prompts must be a str, a list of str, or token-id lists, got {type(prompts).__name__}")
        return [self._one_prompt(p) for p in prompts]

    def _one_prompt(self, p: Prompt) -> List[int]:
        if isinstance(p, dict):
            unknown = set(p) - {"prompt", "prompt_token_ids"}
            if unknown or len(p) != 1:
                raise TypeError(f"a prompt dict has exactly one of 'prompt' or 'prompt_token_ids', got {sorted(p)}")
            p = p.get("prompt", p.get("prompt_token_ids"))
        if isinstance(p, str):
            return self.tokenizer.encode(p, add_special_tokens=True)
        if _is_token_ids(p):
            return list(p)
        raise TypeError(f"a prompt must be a str or a list of int token ids, got {type(p).__name__}: {p!r:.60}")

    def _params(self, sampling_params: Any, n: int) -> List[_core.SamplingParams]:
        if sampling_params is None:
            sampling_params = self.get_default_sampling_params()
        one = isinstance(sampling_params, _core.SamplingParams)
        params = [sampling_params] if one else list(sampling_params)
        for p in params:
            if not isinstance(p, _core.SamplingParams):
                raise TypeError(f"sampling_params must be SamplingParams or a list of them, got {type(p).__name__}")
        if not one and len(params) != n:
            raise ValueError(f"{len(params)} SamplingParams for {n} prompts: give one, or one per prompt")
        if self._rng is not None:  # LLM(seed=...): seed every unseeded request from it
            params = [self._seeded(p) for p in (params * n if one else params)]
        for p in params:
            p.validate()
        return params

    def _seeded(self, p: _core.SamplingParams) -> _core.SamplingParams:
        if p.seed is not None:
            return p
        p = _copy_params(p)
        p.seed = self._rng.getrandbits(63)
        return p


class Stream:
    """The deltas of one request (LLM.stream). Closing it, or dropping it, aborts the request;
    `with llm.stream(...) as s:` aborts it on any exception, Ctrl-C between two deltas included."""

    def __init__(self, engine: _core.Engine, request_id: int, with_logprobs: bool) -> None:
        self._engine, self.request_id, self._with_logprobs = engine, request_id, with_logprobs
        self._done = False

    def __iter__(self) -> "Stream":
        return self

    def __next__(self) -> Dict[str, Any]:
        if self._done:
            raise StopIteration
        try:
            delta = self._engine.next_delta(self.request_id, self._with_logprobs)
        except BaseException:
            self.close()  # a no-op when the engine has aborted it already
            raise
        self._done = delta["finished"]
        return delta

    def close(self) -> None:
        if not self._done:
            self._done = True
            self._engine.abort(self.request_id)

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class AsyncLLM:
    """For asyncio servers: `async for delta in engine.generate(prompt, params)`. Each request
    waits in a worker thread, so the event loop keeps running, and concurrent requests are
    batched into the same engine steps. Cancelling the task aborts its request."""

    def __init__(self, model: str, **kwargs: Any) -> None:
        self.llm = LLM(model, **kwargs)

    @property
    def tokenizer(self) -> Tokenizer:
        return self.llm.tokenizer

    async def generate(self, prompt: Prompt, sampling_params: Optional[_core.SamplingParams] = None
                       ) -> AsyncIterator[Dict[str, Any]]:
        stream = self.llm.stream(prompt, sampling_params)
        try:
            while True:
                delta = await asyncio.to_thread(next, stream, None)
                if delta is None:
                    return
                yield delta
                if delta["finished"]:
                    return
        finally:
            stream.close()

    async def chat(self, messages: List[Message], sampling_params: Optional[_core.SamplingParams] = None,
                   chat_template_kwargs: Optional[Dict[str, Any]] = None) -> AsyncIterator[Dict[str, Any]]:
        ids = self.tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
                                                 **(chat_template_kwargs or {}))
        async for delta in self.generate(ids, sampling_params):
            yield delta


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int) -> Any:
    """tqdm's bar when tqdm is installed (nano-vllm's), else none: the engine needs nothing else."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc="Generating", dynamic_ncols=True, file=sys.stderr)
