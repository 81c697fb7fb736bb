// nanovllm._core: the public C++ API (include/nanovllm/) for Python, through nanobind. The
// package around it (python/nanovllm/) gives it nano-vllm's and vLLM's interface; this file
// keeps to what needs C++: stepping the engine without the GIL, signals between steps, and
// sharing one engine between threads.
#include <nanobind/nanobind.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "nanovllm/error.h"
#include "nanovllm/llm.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace nanovllm {
namespace {

// The text of a delta as a Python str; bytes that are not UTF-8 become U+FFFD rather than an
// exception in the middle of a generation.
nb::str to_str(const std::string& s) {
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
  if (!o) throw nb::python_error();
  return nb::steal<nb::str>(o);
}

// vLLM's shape: one {token id: logprob} per generated token, the chosen token and the top ones.
nb::list logprobs_list(const std::vector<TokenLogprob>& logprobs) {
  nb::list out;
  for (const TokenLogprob& lp : logprobs) {
    nb::dict d;
    d[nb::int_(lp.token_id)] = lp.logprob;
    for (const auto& [id, value] : lp.top) d[nb::int_(id)] = value;
    out.append(d);
  }
  return out;
}

nb::object stop_reason_of(const std::string& s) { return s.empty() ? nb::none() : nb::object(to_str(s)); }

// One LLM shared by every Python thread, stream and asyncio task. Whoever needs tokens steps
// the engine for everyone and files each delta under its request id, so concurrent callers are
// batched into the same forward passes instead of waiting for each other's whole generation.
class Engine {
 public:
  Engine(const std::string& model, const Config& config) : llm_(model, config) {}

  // Queues the requests; if one is refused, those queued before it are aborted (all or none).
  std::vector<int64_t> add(const std::vector<std::vector<int>>& prompts, const std::vector<SamplingParams>& params) {
    if (params.size() != 1 && params.size() != prompts.size()) {
      throw std::invalid_argument("sampling_params must be one SamplingParams or one per prompt (" +
                                  std::to_string(prompts.size()) + " prompts, " + std::to_string(params.size()) +
                                  " SamplingParams)");
    }
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<int64_t> ids;
    try {
      for (size_t i = 0; i < prompts.size(); ++i) {
        ids.push_back(llm_.add_request(prompts[i], params[params.size() == 1 ? 0 : i]));
        inbox_[ids.back()];
      }
    } catch (...) {
      abort_locked(ids);
      throw;
    }
    return ids;
  }

  // The deltas of `ids` produced since the last call. When there are none yet, runs one engine
  // step (for every request in it) first; the result may still be empty (a prefill chunk).
  // Nullopt when none of `ids` is open any more (another thread aborted them: a stream closed
  // by asyncio while its worker thread waited). Called without the GIL.
  std::optional<std::vector<StepOutput>> take(const std::vector<int64_t>& ids) {
    std::lock_guard<std::mutex> lock(mu_);
    if (std::none_of(ids.begin(), ids.end(), [&](int64_t id) { return inbox_.count(id) > 0; })) return std::nullopt;
    std::vector<StepOutput> mine = collect(ids);
    if (!mine.empty()) return mine;
    for (StepOutput& d : llm_.step()) {
      auto it = inbox_.find(d.request_id);
      if (it != inbox_.end()) it->second.push_back(std::move(d));  // others are aborted ones
    }
    return collect(ids);
  }

  void abort(const std::vector<int64_t>& ids) {
    std::lock_guard<std::mutex> lock(mu_);
    abort_locked(ids);
  }

  // Requests queued and not yet handed back finished (tests: nothing leaks after an abort).
  size_t num_open() {
    std::lock_guard<std::mutex> lock(mu_);
    return inbox_.size();
  }

  bool has_unfinished() {
    std::lock_guard<std::mutex> lock(mu_);
    return llm_.has_unfinished();
  }

  // Read-only after construction, so callable without the lock.
  const LLM& llm() const { return llm_; }

  const Tokenizer& tokenizer() const {
    if (!llm_.tokenizer()) throw Error("this checkpoint has no tokenizer.json: pass token ids");
    return *llm_.tokenizer();
  }

 private:
  std::vector<StepOutput> collect(const std::vector<int64_t>& ids) {
    std::vector<StepOutput> out;
    for (int64_t id : ids) {
      auto it = inbox_.find(id);
      if (it == inbox_.end()) continue;
      bool finished = false;
      for (StepOutput& d : it->second) {
        finished = finished || d.finished;
        out.push_back(std::move(d));
      }
      if (finished) {
        inbox_.erase(it);
      } else {
        it->second.clear();
      }
    }
    return out;
  }

  void abort_locked(const std::vector<int64_t>& ids) {
    for (int64_t id : ids) {
      if (inbox_.erase(id)) llm_.abort(id);
    }
  }

  LLM llm_;
  std::mutex mu_;  // guards llm_'s request state and inbox_
  // Every request of ours not yet handed back finished -> its deltas not yet taken.
  std::unordered_map<int64_t, std::vector<StepOutput>> inbox_;
};

// Steps until one of `ids` has news, checking for Ctrl-C between steps. On any exception
// (KeyboardInterrupt included) the requests are aborted, so the engine stays usable. Nullopt
// when they were aborted by another thread.
std::optional<std::vector<StepOutput>> wait_for_deltas(Engine& engine, const std::vector<int64_t>& ids) {
  try {
    for (;;) {
      std::optional<std::vector<StepOutput>> deltas;
      {
        nb::gil_scoped_release nogil;
        deltas = engine.take(ids);
      }
      if (PyErr_CheckSignals() != 0) throw nb::python_error();
      if (!deltas || !deltas->empty()) return deltas;
    }
  } catch (...) {
    nb::gil_scoped_release nogil;
    engine.abort(ids);
    throw;
  }
}

nb::dict output_dict(const RequestOutput& r, bool with_logprobs) {
  nb::dict d;
  d["text"] = to_str(r.text);
  d["token_ids"] = r.token_ids;
  d["finish_reason"] = finish_reason_name(r.finish_reason);
  d["stop_reason"] = stop_reason_of(r.stop_reason);
  d["prompt_token_ids"] = r.prompt_token_ids;
  d["num_cached_tokens"] = r.num_cached_tokens;
  if (with_logprobs) d["logprobs"] = logprobs_list(r.logprobs);
  return d;
}

// nano-vllm's LLM.generate: every prompt to the end, outputs in prompt order. on_finish(n) is
// called (with the GIL) each time n more requests have finished, for a progress bar.
nb::list generate(Engine& engine, const std::vector<std::vector<int>>& prompts,
                  const std::vector<SamplingParams>& params, nb::object on_finish) {
  std::vector<int64_t> ids;
  {
    nb::gil_scoped_release nogil;
    ids = engine.add(prompts, params);
  }
  std::vector<RequestOutput> results(ids.size());
  std::unordered_map<int64_t, size_t> index;
  for (size_t i = 0; i < ids.size(); ++i) {
    index[ids[i]] = i;
    results[i].request_id = ids[i];
    results[i].prompt_token_ids = prompts[i];
  }
  std::vector<int64_t> pending = ids;
  while (!pending.empty()) {
    size_t finished = 0;
    const std::optional<std::vector<StepOutput>> deltas = wait_for_deltas(engine, pending);
    NV_CHECK(deltas.has_value(), "requests of a generate() call were aborted by another thread");
    for (const StepOutput& d : *deltas) {
      results[index.at(d.request_id)].append(d);
      if (d.finished) {
        ++finished;
        std::erase(pending, d.request_id);
      }
    }
    if (finished > 0 && !on_finish.is_none()) {
      try {
        on_finish(finished);
      } catch (...) {
        nb::gil_scoped_release nogil;
        engine.abort(pending);
        throw;
      }
    }
  }
  nb::list out;
  for (size_t i = 0; i < results.size(); ++i) {
    out.append(output_dict(results[i], params[params.size() == 1 ? 0 : i].logprobs.has_value()));
  }
  return out;
}

// The next delta of one streamed request, all its news since the last call merged into one
// dict; "finished" is true in its last delta.
nb::dict next_delta(Engine& engine, int64_t id, bool with_logprobs) {
  RequestOutput merged;
  bool finished = false;
  const std::optional<std::vector<StepOutput>> deltas = wait_for_deltas(engine, {id});
  if (!deltas) {  // closed meanwhile (Stream.close from another thread)
    finished = true;
    merged.finish_reason = FinishReason::kAbort;
  }
  for (const StepOutput& d : deltas.value_or(std::vector<StepOutput>{})) {
    merged.append(d);
    finished = finished || d.finished;
  }
  nb::dict out;
  out["text"] = to_str(merged.text);
  out["token_ids"] = merged.token_ids;
  out["finished"] = finished;
  out["finish_reason"] = finished ? nb::object(nb::str(finish_reason_name(merged.finish_reason))) : nb::none();
  out["stop_reason"] = stop_reason_of(merged.stop_reason);
  if (with_logprobs) out["logprobs"] = logprobs_list(merged.logprobs);
  return out;
}

// Every field of the C++ SamplingParams, read and written as attributes. A new field is one
// line here; the Python SamplingParams(**kwargs) finds the fields from these attributes.
void bind_sampling_params(nb::module_& m) {
  // vLLM's StructuredOutputsParams; python/nanovllm adds its keyword constructor.
  nb::class_<StructuredOutputs>(m, "StructuredOutputs")
      .def(nb::init<>())
      .def("__copy__", [](const StructuredOutputs& s) { return s; })
      .def(
          "validate",
          [](const StructuredOutputs& s) {
            SamplingParams p;  // the check (one kind at most) lives in SamplingParams::validate
            p.structured_outputs = s;
            p.validate();
          },
          "Raises ValueError when more than one kind of constraint is set.")
      .def_rw("json", &StructuredOutputs::json)
      .def_rw("json_object", &StructuredOutputs::json_object)
      .def_rw("regex", &StructuredOutputs::regex)
      .def_rw("choice", &StructuredOutputs::choice)
      .def_rw("grammar", &StructuredOutputs::grammar);
  nb::class_<SamplingParams>(m, "SamplingParams")
      .def(nb::init<>())
      .def("__copy__", [](const SamplingParams& p) { return p; })
      .def("validate", &SamplingParams::validate, "Raises ValueError naming the first bad field.")
      .def_rw("temperature", &SamplingParams::temperature)
      .def_rw("top_p", &SamplingParams::top_p)
      .def_rw("top_k", &SamplingParams::top_k)
      .def_rw("min_p", &SamplingParams::min_p)
      .def_rw("max_tokens", &SamplingParams::max_tokens)
      .def_rw("min_tokens", &SamplingParams::min_tokens)
      .def_rw("ignore_eos", &SamplingParams::ignore_eos)
      .def_rw("stop_token_ids", &SamplingParams::stop_token_ids)
      .def_rw("stop", &SamplingParams::stop)
      .def_rw("include_stop_str_in_output", &SamplingParams::include_stop_str_in_output)
      .def_rw("seed", &SamplingParams::seed, nb::arg().none())
      .def_rw("repetition_penalty", &SamplingParams::repetition_penalty)
      .def_rw("presence_penalty", &SamplingParams::presence_penalty)
      .def_rw("frequency_penalty", &SamplingParams::frequency_penalty)
      .def_rw("logprobs", &SamplingParams::logprobs, nb::arg().none())
      .def_rw("skip_special_tokens", &SamplingParams::skip_special_tokens)
      .def_rw("logit_bias", &SamplingParams::logit_bias)
      .def_rw("structured_outputs", &SamplingParams::structured_outputs);
}

// The engine's configuration, field by field like SamplingParams; python/nanovllm maps vLLM's
// keyword arguments onto it.
void bind_config(nb::module_& m) {
  nb::class_<Config>(m, "Config")
      .def(nb::init<>())
      .def("validate", &Config::validate, "Raises ValueError naming the first bad field.")
      .def_rw("max_num_batched_tokens", &Config::max_num_batched_tokens)
      .def_rw("max_num_seqs", &Config::max_num_seqs)
      .def_rw("long_prefill_token_threshold", &Config::long_prefill_token_threshold)
      .def_rw("max_model_len", &Config::max_model_len)
      .def_rw("allow_long_max_model_len", &Config::allow_long_max_model_len)
      .def_rw("block_size", &Config::block_size)
      .def_rw("kv_cache_bytes", &Config::kv_cache_bytes)
      .def_rw("kv_cache_memory_fraction", &Config::kv_cache_memory_fraction)
      .def_rw("num_kv_blocks", &Config::num_kv_blocks)
      .def_rw("kv_cache_dtype", &Config::kv_cache_dtype)
      .def_rw("kv_cache_prefault", &Config::kv_cache_prefault)
      .def_rw("quantization", &Config::quantization)
      .def_rw("enable_prefix_caching", &Config::enable_prefix_caching)
      .def_rw("threads", &Config::threads)
      .def_rw("backend", &Config::backend)
      .def_rw("backend_options", &Config::backend_options);
}

void bind_engine(nb::module_& m) {
  nb::class_<Engine>(m, "Engine")
      .def(nb::init<const std::string&, const Config&>(), "model"_a, "config"_a,
           nb::call_guard<nb::gil_scoped_release>(), "Loads the checkpoint (without the GIL).")
      .def("generate", &generate, "prompts"_a, "params"_a, "on_finish"_a = nb::none(),
           "Runs token-id prompts to the end; one params for all, or one per prompt.")
      .def(
          "add_request",
          [](Engine& e, std::vector<int> prompt, const SamplingParams& params) { return e.add({prompt}, {params})[0]; },
          "prompt_token_ids"_a, "params"_a, nb::call_guard<nb::gil_scoped_release>())
      .def("next_delta", &next_delta, "request_id"_a, "with_logprobs"_a = false,
           "Blocks until the request has news; its new tokens and text since the last call.")
      .def(
          "abort", [](Engine& e, int64_t id) { e.abort({id}); }, "request_id"_a,
          nb::call_guard<nb::gil_scoped_release>())
      .def("num_open_requests", &Engine::num_open, nb::call_guard<nb::gil_scoped_release>())
      .def("has_unfinished", &Engine::has_unfinished, nb::call_guard<nb::gil_scoped_release>())
      .def("default_sampling_params", [](const Engine& e) { return e.llm().default_sampling_params(); })
      .def_prop_ro("max_model_len", [](const Engine& e) { return e.llm().max_model_len(); })
      .def_prop_ro("vocab_size", [](const Engine& e) { return e.llm().vocab_size(); })
      .def_prop_ro("config", [](const Engine& e) { return e.llm().config(); })
      .def_prop_ro("has_tokenizer", [](const Engine& e) { return e.llm().tokenizer() != nullptr; })
      .def_prop_ro("bos_token_id", [](const Engine& e) { return e.tokenizer().bos_token_id(); })
      .def_prop_ro("eos_token_id", [](const Engine& e) { return e.tokenizer().eos_token_id(); })
      .def(
          "encode",
          [](const Engine& e, const std::string& text, bool add_special_tokens) {
            return e.tokenizer().encode(text, add_special_tokens);
          },
          "text"_a, "add_special_tokens"_a = true, nb::call_guard<nb::gil_scoped_release>())
      .def(
          "decode",
          [](const Engine& e, const std::vector<int>& ids, bool skip_special_tokens) {
            for (int id : ids) {
              if (id < 0 || id >= e.tokenizer().vocab_size()) {
                throw std::invalid_argument("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                            std::to_string(e.tokenizer().vocab_size()) + ")");
              }
            }
            return e.tokenizer().decode(ids, skip_special_tokens);
          },
          "token_ids"_a, "skip_special_tokens"_a = true)
      .def(
          "apply_chat_template",
          [](const Engine& e, const std::string& messages_json, bool add_generation_prompt,
             const std::string& kwargs_json, const std::string& tools_json) {
            return e.llm().apply_chat_template(messages_json, add_generation_prompt, kwargs_json, tools_json);
          },
          "messages_json"_a, "add_generation_prompt"_a = true, "kwargs_json"_a = "{}", "tools_json"_a = "null",
          nb::call_guard<nb::gil_scoped_release>());
}

}  // namespace
}  // namespace nanovllm

NB_MODULE(_core, m) {
  m.doc() = "nano-vllm-cpp's C++ engine; use the nanovllm package's LLM and SamplingParams.";
  // Bad input from the library (a missing checkpoint, a prompt longer than the context, a
  // template error) is the caller's mistake, as a ValueError is in Python.
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const nanovllm::Error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
  nanovllm::bind_sampling_params(m);
  nanovllm::bind_config(m);
  nanovllm::bind_engine(m);
}
