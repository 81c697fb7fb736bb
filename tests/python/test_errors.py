"""Every bad argument raises, with a message that names it: TypeError for an unknown keyword or
a wrong type, ValueError for a bad value (SamplingParams' C++ validation included)."""
import pytest

import nanovllm
from nanovllm import LLM, SamplingParams

from conftest import ENGINE, STORIES


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(temprature=0.5), TypeError, "unexpected keyword argument 'temprature'; did you mean 'temperature'"),
    (dict(best_of=2), TypeError, "unexpected keyword argument 'best_of'"),
    (dict(temperature="hot"), TypeError, "temperature"),
    (dict(max_tokens=1.5), TypeError, "max_tokens"),
    (dict(stop=[1]), TypeError, "stop"),
    (dict(temperature=-1), ValueError, "temperature must be >= 0, got -1"),
    (dict(temperature=float("nan")), ValueError, "temperature must be >= 0"),
    (dict(top_p=0), ValueError, "top_p must be in (0, 1], got 0"),
    (dict(top_p=1.5), ValueError, "top_p must be in (0, 1]"),
    (dict(top_k=-2), ValueError, "top_k must be -1, 0 (off) or a positive count"),
    (dict(min_p=2), ValueError, "min_p must be in [0, 1]"),
    (dict(max_tokens=0), ValueError, "max_tokens must be >= 1, got 0"),
    (dict(min_tokens=10, max_tokens=5), ValueError, "min_tokens must be in [0, max_tokens]"),
    (dict(repetition_penalty=0), ValueError, "repetition_penalty must be > 0"),
    (dict(presence_penalty=3), ValueError, "presence_penalty must be in [-2, 2]"),
    (dict(frequency_penalty=-3), ValueError, "frequency_penalty must be in [-2, 2]"),
    (dict(logprobs=21), ValueError, "logprobs must be in [0, 20]"),
    (dict(stop_token_ids=[-1]), ValueError, "stop_token_ids must be non-negative token ids"),
    (dict(stop=[""]), ValueError, "stop must be non-empty strings"),
    (dict(logit_bias={5: 200.0}), ValueError, "logit_bias must be values in [-100, 100]"),
    (dict(logit_bias={-5: 1.0}), ValueError, "logit_bias must be keyed by non-negative token ids"),
])
def test_bad_sampling_params(kwargs, error, message):
    with pytest.raises(error, match=None) as e:
        SamplingParams(**kwargs)
    assert message in str(e.value)


def test_a_field_set_after_construction_is_checked_by_generate(stories):
    sp = SamplingParams(max_tokens=4)
    sp.top_p = 7.0
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\], got 7"):
        stories.generate("Once", sp, use_tqdm=False)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(max_num_seq=4), TypeError, "LLM() got an unexpected keyword argument 'max_num_seq'; did you mean 'max_num_seqs'"),
    (dict(pipeline_parallel_size=2), TypeError, "unexpected keyword argument 'pipeline_parallel_size'"),
    (dict(tensor_parallel_size=2), ValueError, "tensor_parallel_size=2: only 1"),
    (dict(dtype="float16"), ValueError, "dtype='float16': only 'auto'"),
    (dict(device="cuda"), ValueError, "device='cuda': the native backend runs on the CPU"),
    (dict(kv_cache_dtype="fp8"), ValueError, "kv_cache_dtype='fp8'"),
    (dict(quantization="awq"), ValueError, "quantization must be int8 or empty, got awq"),
    (dict(max_num_seqs=0), ValueError, "max_num_seqs must be >= 1, got 0"),
    (dict(kvcache_block_size=0), ValueError, "block_size must be in [1, 1024], got 0"),
    (dict(max_model_len=4096), ValueError, "max_model_len 4096 is above the model's max_position_embeddings 512"),
    (dict(max_num_batched_tokens="many"), TypeError, "max_num_batched_tokens"),
    (dict(backend="tpu"), ValueError, "unknown backend 'tpu'"),
])
def test_bad_llm_arguments(kwargs, error, message):
    with pytest.raises(error) as e:
        LLM(str(STORIES), **{**ENGINE, **kwargs})
    assert message in str(e.value)


def test_gpu_only_arguments_are_accepted():
    llm = LLM(str(STORIES), enforce_eager=True, tensor_parallel_size=1, gpu_memory_utilization=0.9,
              dtype="auto", device="cpu", trust_remote_code=True, **ENGINE)
    assert llm.generate("Once", SamplingParams(max_tokens=2), use_tqdm=False)[0]["token_ids"]


def test_bad_model_paths(tmp_path):
    with pytest.raises(ValueError, match="model path does not exist"):
        LLM(str(tmp_path / "nothing"))
    with pytest.raises(ValueError, match="has no config.json"):
        LLM(str(tmp_path))
    with pytest.raises(TypeError, match="model must be a path"):
        LLM(42)


def test_bad_generate_arguments(stories):
    sp = SamplingParams(max_tokens=2)
    with pytest.raises(TypeError, match="a prompt must be a str or a list of int token ids"):
        stories.generate([3.5], sp)
    with pytest.raises(TypeError, match="prompts must be a str"):
        stories.generate(7, sp)
    with pytest.raises(TypeError, match="exactly one of 'prompt' or 'prompt_token_ids'"):
        stories.generate({"text": "hi"}, sp)
    with pytest.raises(ValueError, match="2 SamplingParams for 3 prompts"):
        stories.generate(["a", "b", "c"], [sp, sp])
    with pytest.raises(TypeError, match="sampling_params must be SamplingParams"):
        stories.generate("a", {"temperature": 0})
    with pytest.raises(ValueError, match="vocab"):
        stories.generate([[1, 5000]], sp)
    with pytest.raises(ValueError, match="longer|context|max_model_len"):
        stories.generate([[1] * 600], sp)
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        stories.generate("a", sp, use_tqmd=False)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        stories.tokenizer.decode([1, 99999])
    with pytest.raises(TypeError, match="encode.. takes a str"):
        stories.tokenizer.encode(5)
    # Nothing was queued by any of them.
    assert stories._engine.num_open_requests() == 0 and not stories._engine.has_unfinished()


def test_chat_on_a_model_without_a_template(stories):
    with pytest.raises(ValueError, match="chat template|chat_template"):
        stories.chat([{"role": "user", "content": "hi"}], SamplingParams(max_tokens=2))
    with pytest.raises(TypeError, match="JSON-serialisable"):
        stories.tokenizer.apply_chat_template([{"role": "user", "content": object()}])


def test_device_and_dtype_are_the_torch_backends_options():
    # backend="torch" takes them as its own options (it names what it does not have); the native
    # backend refuses them above.
    config = nanovllm._core.Config()
    config.backend = "torch"
    nanovllm.LLM._set_backend_options(config, {"device": "cuda:1", "dtype": "bf16"})
    assert config.backend_options == {"device": "cuda:1", "dtype": "bf16"}
