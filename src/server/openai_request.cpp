// Request parsing: JSON fields to SamplingParams and token-id prompts, every check naming its field.
#include "server/openai_request.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <string_view>

#include "common/json.h"
#include "nanovllm/error.h"
#include "server/api_error.h"
#include "tokenizer/chat_template.h"

namespace nanovllm::server {
namespace {

constexpr int kMaxChoices = 128;  // n, and prompts × n per request

[[noreturn]] void bad(const std::string& param, const std::string& message) {
  throw ApiError(400, message, param);
}

// The field, or null when it is absent or JSON null (OpenAI treats both as "not given").
const json* field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

double number(const json& v, const char* key) {
  if (!v.is_number()) bad(key, std::string("'") + key + "' must be a number");
  const double d = v.get<double>();
  if (!std::isfinite(d)) bad(key, std::string("'") + key + "' must be finite");
  return d;
}

// An integer in [lo, hi]; an integral float such as 5.0 counts (as pydantic accepts it).
int64_t integer(const json& v, const char* key, int64_t lo, int64_t hi) {
  const std::string name = std::string("'") + key + "'";
  double d;
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi)) {
      bad(key, name + " must be at most " + std::to_string(hi));
    }
    const int64_t i = v.get<int64_t>();
    if (i < lo || i > hi) bad(key, name + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return i;
  }
  if (!v.is_number_float() || !std::isfinite(d = v.get<double>()) || d != std::floor(d)) {
    bad(key, name + " must be an integer");
  }
  if (d < static_cast<double>(lo) || d > static_cast<double>(hi)) {
    bad(key, name + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return static_cast<int64_t>(d);
}

bool boolean(const json& v, const char* key) {
  if (!v.is_boolean()) bad(key, std::string("'") + key + "' must be a boolean");
  return v.get<bool>();
}

void read_float(const json& body, const char* key, float& out) {
  if (const json* v = field(body, key)) out = static_cast<float>(number(*v, key));
}

std::vector<std::string> string_list(const json& v, const char* key) {
  if (v.is_string()) return {v.get<std::string>()};
  if (!v.is_array()) bad(key, std::string("'") + key + "' must be a string or a list of strings");
  std::vector<std::string> out;
  for (const json& s : v) {
    if (!s.is_string()) bad(key, std::string("'") + key + "' must be a string or a list of strings");
    out.push_back(s.get<std::string>());
  }
  return out;
}

std::vector<int> id_list(const json& v, const char* key) {
  if (!v.is_array()) bad(key, std::string("'") + key + "' must be a list of token ids");
  std::vector<int> out;
  for (const json& t : v) out.push_back(static_cast<int>(integer(t, key, 0, std::numeric_limits<int>::max())));
  return out;
}

std::string string_field(const json& v, const char* key) {
  if (!v.is_string()) bad(key, std::string("'") + key + "' must be a string");
  return v.get<std::string>();
}

// The request fields each endpoint honours (OpenAI's, and vLLM's extra sampling fields).
// Every other field is answered with 400 naming it: dropping it would silently give another
// answer than the one asked for.
const std::set<std::string_view> kCommonFields = {
    "model", "stream", "stream_options", "n", "best_of", "max_tokens", "max_completion_tokens",
    "temperature", "top_p", "top_k", "min_p", "seed", "stop", "stop_token_ids", "ignore_eos",
    "min_tokens", "presence_penalty", "frequency_penalty", "repetition_penalty", "logit_bias",
    "logprobs", "skip_special_tokens", "include_stop_str_in_output", "response_format",
    // Structured outputs, in vLLM's spellings (the guided_* ones are its older API).
    "structured_outputs", "guided_json", "guided_regex", "guided_choice", "guided_grammar",
    // Informational only: OpenAI's spec says they identify the caller or group requests for
    // its caches and never change the output.
    "user", "safety_identifier", "prompt_cache_key", "metadata"};
const std::set<std::string_view> kCompletionFields = {"prompt", "echo", "suffix"};
const std::set<std::string_view> kChatFields = {"messages", "top_logprobs", "tools", "tool_choice", "parallel_tool_calls",
                                                "add_generation_prompt", "chat_template_kwargs"};

// Known fields of OpenAI or vLLM that change the output in ways not implemented here; the
// message says which. Null is accepted for them, as for every field: it means "not given".
const char* unsupported_reason(std::string_view key) {
  if (key == "prompt_logprobs") return "log-probabilities of prompt tokens are not computed";
  if (key.starts_with("guided_")) return "this guided decoding option is not implemented";
  if (key == "functions" || key == "function_call") return "use 'tools' (functions are not called here)";
  return nullptr;
}

void check_fields(const json& body, Endpoint endpoint) {
  const auto& own = endpoint == Endpoint::kChat ? kChatFields : kCompletionFields;
  for (const auto& [key, value] : body.items()) {
    if (kCommonFields.count(key) || own.count(key)) continue;
    const char* reason = unsupported_reason(key);
    if (reason && value.is_null()) continue;
    const std::string why = reason ? std::string(": ") + reason : " by this server";
    bad(key, "'" + key + "' is not supported" + why);
  }
}

// The accepted fields that need no engine support: informational ones are type-checked;
// best_of and suffix pass only in their no-op forms.
void check_no_op_fields(const json& body, int n) {
  for (const char* key : {"user", "safety_identifier", "prompt_cache_key"}) {
    if (const json* v = field(body, key)) string_field(*v, key);
  }
  if (const json* v = field(body, "metadata")) {
    if (!v->is_object()) bad("metadata", "'metadata' must be an object of strings");
    for (const auto& [k, s] : v->items()) {
      if (!s.is_string()) bad("metadata", "'metadata' must be an object of strings");
    }
  }
  if (const json* v = field(body, "best_of")) {
    if (integer(*v, "best_of", 1, kMaxChoices) != n) {
      bad("best_of", "'best_of' is not supported unless it equals n: every sample is returned");
    }
  }
  if (const json* v = field(body, "suffix"); v && !string_field(*v, "suffix").empty()) {
    bad("suffix", "'suffix' is not supported: no insertion (fill-in-the-middle) completions");
  }
}

// OpenAI's logit_bias: {"token id": bias in [-100, 100]}; the ids are checked against the
// vocabulary when the engine takes the request.
std::map<int, float> read_logit_bias(const json& v) {
  if (!v.is_object()) {
    bad("logit_bias", "'logit_bias' must be an object mapping token ids (strings) to biases");
  }
  std::map<int, float> out;
  for (const auto& [key, value] : v.items()) {
    int id = -1;
    const auto [end, err] = std::from_chars(key.data(), key.data() + key.size(), id);
    if (err != std::errc() || end != key.data() + key.size() || id < 0) {
      bad("logit_bias",
          "'logit_bias' keys must be token ids (non-negative integers), got " + json(key).dump());
    }
    const double bias = number(value, "logit_bias");
    if (bias < -100 || bias > 100) {
      bad("logit_bias",
          "'logit_bias' values must be in [-100, 100], got " + value.dump() + " for token " + key);
    }
    out[id] = static_cast<float>(bias);
  }
  return out;
}

StructuredOutputs read_structured_outputs(const json& body);

// Sampling fields shared by both endpoints; max_tokens and logprobs are read by the callers.
SamplingParams read_sampling(const json& body, const ServingContext& ctx) {
  SamplingParams p = ctx.defaults;
  read_float(body, "temperature", p.temperature);
  read_float(body, "top_p", p.top_p);
  read_float(body, "min_p", p.min_p);
  read_float(body, "presence_penalty", p.presence_penalty);
  read_float(body, "frequency_penalty", p.frequency_penalty);
  read_float(body, "repetition_penalty", p.repetition_penalty);
  if (const json* v = field(body, "top_k")) p.top_k = static_cast<int>(integer(*v, "top_k", -1, 1 << 30));
  if (const json* v = field(body, "min_tokens")) p.min_tokens = static_cast<int>(integer(*v, "min_tokens", 0, 1 << 30));
  if (const json* v = field(body, "seed")) {
    p.seed = static_cast<uint64_t>(integer(*v, "seed", std::numeric_limits<int64_t>::min(),
                                           std::numeric_limits<int64_t>::max()));
  }
  if (const json* v = field(body, "stop")) p.stop = string_list(*v, "stop");
  if (const json* v = field(body, "stop_token_ids")) p.stop_token_ids = id_list(*v, "stop_token_ids");
  if (const json* v = field(body, "ignore_eos")) p.ignore_eos = boolean(*v, "ignore_eos");
  if (const json* v = field(body, "skip_special_tokens")) p.skip_special_tokens = boolean(*v, "skip_special_tokens");
  if (const json* v = field(body, "include_stop_str_in_output")) {
    p.include_stop_str_in_output = boolean(*v, "include_stop_str_in_output");
  }
  if (const json* v = field(body, "logit_bias")) p.logit_bias = read_logit_bias(*v);
  p.structured_outputs = read_structured_outputs(body);
  return p;
}

// A JSON schema given as an object, or as JSON text (vLLM takes both for guided_json).
std::string schema_text(const json& v, const std::string& key) {
  if (v.is_string()) {
    try {
      return parse_json<json>(v.get<std::string>(), "'" + key + "'").dump();
    } catch (const Error& e) {
      bad(key, e.what());
    }
  }
  if (!v.is_object() && !v.is_boolean()) bad(key, "'" + key + "' must be a JSON schema (an object)");
  return v.dump();
}

// OpenAI's response_format: text (nothing), json_object, or json_schema {name, schema, strict}.
void read_response_format(const json& v, StructuredOutputs& so) {
  const json* type = v.is_object() ? field(v, "type") : nullptr;
  if (!type || !type->is_string()) bad("response_format", "'response_format' must be an object with a string 'type'");
  if (*type == "text") return;
  if (*type == "json_object") {
    so.json_object = true;
  } else if (*type == "json_schema") {
    const json* js = field(v, "json_schema");
    if (!js || !js->is_object()) bad("response_format", "'response_format' of type json_schema needs 'json_schema': {'name': ..., 'schema': {...}}");
    const json* schema = field(*js, "schema");
    if (!schema) bad("response_format", "'response_format' of type json_schema needs 'json_schema': {'name': ..., 'schema': {...}}");
    so.json = schema_text(*schema, "response_format.json_schema.schema");
  } else {
    bad("response_format", "'response_format' type must be 'text', 'json_object' or 'json_schema', got " + type->dump());
  }
}

// One constraint: kind is "json", "regex", "choice", "grammar" or "json_object"; label is the
// field as the client wrote it, for the error message.
StructuredOutputs read_constraint(const json& v, std::string_view kind, const std::string& label) {
  StructuredOutputs so;
  if (kind == "json") so.json = schema_text(v, label);
  if (kind == "regex") so.regex = string_field(v, label.c_str());
  if (kind == "grammar") so.grammar = string_field(v, label.c_str());
  if (kind == "json_object") so.json_object = boolean(v, label.c_str());
  if (kind == "choice") {
    so.choice = string_list(v, label.c_str());
    if (so.choice.empty()) bad(label, "'" + label + "' must list at least one string");
  }
  return so;
}

// Structured outputs from response_format, vLLM's structured_outputs object or its guided_*
// fields; at most one constraint per request (the engine would otherwise have to pick one).
StructuredOutputs read_structured_outputs(const json& body) {
  std::vector<std::pair<StructuredOutputs, std::string>> found;  // (constraint, field)
  if (const json* v = field(body, "response_format")) {
    StructuredOutputs so;
    read_response_format(*v, so);
    found.emplace_back(so, "response_format");
  }
  static const std::set<std::string_view> kinds = {"json", "regex", "choice", "grammar", "json_object"};
  if (const json* v = field(body, "structured_outputs")) {
    if (!v->is_object()) bad("structured_outputs", "'structured_outputs' must be an object");
    for (const auto& [key, value] : v->items()) {
      if (value.is_null()) continue;
      const std::string label = "structured_outputs." + key;
      if (!kinds.count(key)) bad("structured_outputs", "'" + label + "' is not supported");
      found.emplace_back(read_constraint(value, key, label), label);
    }
  }
  for (std::string_view kind : {"json", "regex", "choice", "grammar"}) {
    const std::string key = "guided_" + std::string(kind);
    if (const json* v = field(body, key.c_str())) found.emplace_back(read_constraint(*v, kind, key), key);
  }
  std::erase_if(found, [](const auto& f) { return !f.first.active(); });
  if (found.size() > 1) {
    bad(found[1].second, "one structured output constraint per request: got '" + found[0].second + "' and '" +
                             found[1].second + "'");
  }
  return found.empty() ? StructuredOutputs{} : found[0].first;
}

// max_tokens (or max_completion_tokens); unset means the rest of the context, as in vLLM.
std::optional<int> read_max_tokens(const json& body) {
  for (const char* key : {"max_completion_tokens", "max_tokens"}) {
    if (const json* v = field(body, key)) return static_cast<int>(integer(*v, key, 1, std::numeric_limits<int>::max()));
  }
  return std::nullopt;
}

void read_stream_options(const json& body, GenerationRequest& req) {
  if (const json* v = field(body, "stream")) req.stream = boolean(*v, "stream");
  if (const json* v = field(body, "n")) req.n = static_cast<int>(integer(*v, "n", 1, kMaxChoices));
  if (const json* v = field(body, "stream_options")) {
    if (!v->is_object()) bad("stream_options", "'stream_options' must be an object");
    for (const auto& [key, value] : v->items()) {
      if (key != "include_usage") bad("stream_options", "'stream_options." + key + "' is not supported");
    }
    if (const json* u = field(*v, "include_usage")) req.include_usage = boolean(*u, "stream_options.include_usage");
  }
}

// Per-prompt params: the length check and the default max_tokens depend on the prompt.
void finish_params(GenerationRequest& req, const SamplingParams& base, std::optional<int> max_tokens,
                   const ServingContext& ctx) {
  if (req.prompts.size() * static_cast<size_t>(req.n) > kMaxChoices) {
    bad("n", "at most " + std::to_string(kMaxChoices) + " choices (prompts × n) per request");
  }
  for (const std::vector<int>& prompt : req.prompts) {
    const int len = std::max<int>(1, static_cast<int>(prompt.size()));  // empty = BOS alone
    if (len >= ctx.max_model_len) {
      bad("messages", "the prompt is " + std::to_string(len) + " tokens long; this model's context holds " +
                          std::to_string(ctx.max_model_len) + " tokens, prompt and completion together");
    }
    SamplingParams p = base;
    p.max_tokens = max_tokens.value_or(ctx.max_model_len - len);
    if (len + static_cast<int64_t>(p.max_tokens) > ctx.max_model_len) {
      bad("max_tokens", "this model's maximum context length is " + std::to_string(ctx.max_model_len) +
                            " tokens; you requested " + std::to_string(len + static_cast<int64_t>(p.max_tokens)) +
                            " tokens (" + std::to_string(len) + " in the prompt, " +
                            std::to_string(p.max_tokens) + " for the completion)");
    }
    try {
      p.validate();
    } catch (const std::invalid_argument& e) {
      const std::string msg = e.what();
      bad(msg.substr(0, msg.find(' ')), msg);
    }
    req.params.push_back(std::move(p));
  }
}

const Tokenizer& need_tokenizer(const ServingContext& ctx) {
  if (!ctx.tokenizer) bad("prompt", "this model has no tokenizer.json: send token ids");
  return *ctx.tokenizer;
}

std::vector<int> encode(const ServingContext& ctx, const std::string& text, bool add_special) {
  try {
    return need_tokenizer(ctx).encode(text, add_special);
  } catch (const Error& e) {
    bad("prompt", e.what());
  }
}

// prompt: a string, a list of strings, a list of token ids, or a list of such lists.
std::vector<std::vector<int>> read_prompts(const json& body, const ServingContext& ctx) {
  const json* v = field(body, "prompt");
  if (!v) bad("prompt", "'prompt' is required");
  if (v->is_string()) return {encode(ctx, v->get<std::string>(), true)};
  if (!v->is_array() || v->empty()) bad("prompt", "'prompt' must be a string, a list of strings or token ids, non-empty");
  std::vector<std::vector<int>> out;
  if ((*v)[0].is_number()) return {id_list(*v, "prompt")};
  for (const json& p : *v) {
    if (p.is_string()) out.push_back(encode(ctx, p.get<std::string>(), true));
    else if (p.is_array()) out.push_back(id_list(p, "prompt"));
    else bad("prompt", "'prompt' must be a string, a list of strings or token ids, non-empty");
  }
  return out;
}

// A message's content as vLLM hands it to a template: a string, text parts joined by "\n";
// null or absent is "" (an assistant turn that only calls tools has "content": null).
json message_content(const json& content) {
  if (content.is_null()) return "";
  if (content.is_string()) return content;
  if (!content.is_array()) bad("messages", "message 'content' must be a string or a list of text parts");
  std::string text;
  bool first = true;
  for (const json& part : content) {
    const json* type = part.is_object() ? field(part, "type") : nullptr;
    const json* t = part.is_object() ? field(part, "text") : nullptr;
    if (!type || *type != "text" || !t || !t->is_string()) {
      bad("messages", "only text content parts ({\"type\": \"text\", \"text\": ...}) are supported");
    }
    if (!first) text += '\n';
    first = false;
    text += t->get<std::string>();
  }
  return text;
}

// A tool call's function.arguments, a JSON string in OpenAI's format, becomes the object that
// templates iterate over (Qwen's "arguments | tojson", Llama's "arguments.items()"), as vLLM
// does for every template: a string that is not JSON, null or another type becomes {}.
json tool_arguments(const json& arguments) {
  if (arguments.is_object() || arguments.is_array()) return arguments;
  if (!arguments.is_string()) return json::object();
  try {
    return parse_json<json>(arguments.get<std::string>(), "arguments");
  } catch (const Error&) {
    return json::object();
  }
}

// An assistant message's tool_calls with their arguments parsed; an empty list is dropped, so
// that templates take the plain assistant path (vLLM's rule).
void normalize_tool_calls(json& msg) {
  auto it = msg.find("tool_calls");
  if (it == msg.end() || it->is_null()) return;
  if (!it->is_array()) bad("messages", "an assistant message's 'tool_calls' must be a list");
  if (it->empty()) {
    msg.erase(it);
    return;
  }
  for (json& call : *it) {
    if (!call.is_object()) bad("messages", "each tool call must be an object");
    auto fn = call.find("function");
    if (fn == call.end()) continue;  // not OpenAI's shape; the template sees it as given
    if (!fn->is_object()) bad("messages", "a tool call's 'function' must be an object");
    (*fn)["arguments"] = tool_arguments(fn->contains("arguments") ? (*fn)["arguments"] : json());
  }
}

json read_messages(const json& body) {
  const json* v = field(body, "messages");
  if (!v || !v->is_array() || v->empty()) bad("messages", "'messages' must be a non-empty list of messages");
  json out = json::array();
  for (const json& m : *v) {
    if (!m.is_object()) bad("messages", "each message must be an object");
    const json* role = field(m, "role");
    if (!role || !role->is_string()) bad("messages", "each message needs a string 'role'");
    json msg = m;
    msg["content"] = message_content(m.contains("content") ? m["content"] : json());
    if (*role == "assistant") normalize_tool_calls(msg);
    out.push_back(std::move(msg));
  }
  return out;
}

}  // namespace

json parse_body(const std::string& body) {
  json j;
  try {
    j = parse_json<json>(body, "the request body");
  } catch (const Error& e) {
    // "the request body: invalid JSON: ... last read: '...'" or "... nested deeper than 128 levels";
    // error_body() replaces bytes that are not UTF-8.
    std::string msg = e.what();
    if (msg.size() > 300) msg.resize(300);
    throw ApiError(400, msg);
  }
  if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object");
  return j;
}

void check_model(const json& body, const std::string& served_name) {
  const json* v = field(body, "model");
  if (!v) return;
  if (!v->is_string()) bad("model", "'model' must be a string");
  if (v->get<std::string>() != served_name) {
    throw ApiError(404, "the model '" + v->get<std::string>() + "' does not exist (this server has '" +
                            served_name + "')", "model");
  }
}

GenerationRequest parse_completion_request(const json& body, const ServingContext& ctx) {
  GenerationRequest req;
  req.endpoint = Endpoint::kCompletions;
  check_fields(body, req.endpoint);
  read_stream_options(body, req);
  check_no_op_fields(body, req.n);
  SamplingParams base = read_sampling(body, ctx);
  if (const json* v = field(body, "logprobs")) {
    base.logprobs = static_cast<int>(integer(*v, "logprobs", 0, 20));
    req.logprobs = true;
  }
  if (const json* v = field(body, "echo"); v && boolean(*v, "echo")) bad("echo", "'echo' is not supported");
  std::optional<int> max_tokens = read_max_tokens(body);
  if (!field(body, "max_tokens")) max_tokens = max_tokens.value_or(16);  // OpenAI's completions default
  req.prompts = read_prompts(body, ctx);
  finish_params(req, base, max_tokens, ctx);
  return req;
}

// The function entries of 'tools', checked: {"type": "function", "function": {"name", ...}}.
std::vector<json> read_tools(const json& body) {
  std::vector<json> out;
  const json* v = field(body, "tools");
  if (!v) return out;
  if (!v->is_array()) bad("tools", "'tools' must be a list");
  for (const json& t : *v) {
    const json* fn = t.is_object() ? field(t, "function") : nullptr;
    const json* type = t.is_object() ? field(t, "type") : nullptr;
    if (!fn || !fn->is_object() || (type && *type != "function")) {
      bad("tools", "each tool must be {\"type\": \"function\", \"function\": {\"name\": ..., \"parameters\": ...}}");
    }
    const json* name = field(*fn, "name");
    if (!name || !name->is_string() || name->get<std::string>().empty()) bad("tools", "each tool function needs a 'name'");
    const json* params = field(*fn, "parameters");
    if (params && !params->is_object()) bad("tools", "tool '" + name->get<std::string>() + "': 'parameters' must be a JSON schema object");
    out.push_back(*fn);
  }
  return out;
}

// The parameters schema of a function (any object when it declares none).
json parameters_schema(const json& fn) {
  const json* p = field(fn, "parameters");
  return p ? *p : json{{"type", "object"}};
}

// tool_choice: "none" (tools are not shown to the model, as in vLLM), "auto" (the reply is
// parsed in the model's native format), "required" or a named function. The last two are
// enforced by a JSON schema, as vLLM does: a list of {name, parameters} objects, or the
// named function's arguments.
ReplyFormat read_tool_choice(const json& body, const ServingContext& ctx, StructuredOutputs& so) {
  ReplyFormat f;
  const std::vector<json> tools = read_tools(body);
  // parallel_tool_calls false: one call at most (the grammar's list holds one; auto keeps the first).
  bool parallel = true;
  if (const json* v = field(body, "parallel_tool_calls")) parallel = boolean(*v, "parallel_tool_calls");
  f.max_calls = parallel ? 0 : 1;
  const json* v = field(body, "tool_choice");
  const json choice = v ? *v : json(tools.empty() ? "none" : "auto");
  if (choice == "none" || (choice == "auto" && tools.empty())) return f;
  if (tools.empty()) bad("tool_choice", "'tool_choice' " + choice.dump() + " needs 'tools'");
  if (so.active() && choice != "auto") {
    bad("tool_choice", "'tool_choice' " + choice.dump() + " cannot be combined with a structured output constraint");
  }
  if (choice == "auto") {
    if (ctx.tool_parser.empty()) {
      bad("tool_choice", "'tool_choice' \"auto\" needs a tool-call parser and this model's chat template has no known "
                         "tool-call format: start the server with --tool-call-parser (hermes, llama3_json, mistral)");
    }
    f.tool_mode = ToolMode::kAuto;
    f.tool_parser = ctx.tool_parser;
    return f;
  }
  if (choice == "required") {
    json any_of = json::array();
    for (const json& fn : tools) {
      any_of.push_back({{"type", "object"},
                        {"properties", {{"name", {{"type", "string"}, {"enum", {fn["name"]}}}}, {"parameters", parameters_schema(fn)}}},
                        {"required", {"name", "parameters"}}, {"additionalProperties", false}});
    }
    json list = {{"type", "array"}, {"minItems", 1}, {"items", {{"anyOf", any_of}}}};
    if (!parallel) list["maxItems"] = 1;
    so.json = list.dump();
    f.tool_mode = ToolMode::kRequired;
    return f;
  }
  const json* fn = choice.is_object() ? field(choice, "function") : nullptr;
  const json* name = fn && fn->is_object() ? field(*fn, "name") : nullptr;
  if (!name || !name->is_string()) {
    bad("tool_choice", "'tool_choice' must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", "
                       "\"function\": {\"name\": ...}}, got " + choice.dump());
  }
  for (const json& t : tools) {
    if (t["name"] == *name) {
      so.json = parameters_schema(t).dump();
      f.tool_mode = ToolMode::kNamed;
      f.named_function = name->get<std::string>();
      return f;
    }
  }
  bad("tool_choice", "'tool_choice' names the function " + name->dump() + ", which is not in 'tools'");
}

std::string render_chat(const json& body, const ServingContext& ctx) {
  if (!ctx.chat_template) bad("messages", "this model has no chat template (tokenizer_config.json chat_template)");
  const json messages = read_messages(body);
  bool add_generation_prompt = true;
  if (const json* v = field(body, "add_generation_prompt")) add_generation_prompt = boolean(*v, "add_generation_prompt");
  json kwargs = json::object();
  if (const json* v = field(body, "chat_template_kwargs")) {
    if (!v->is_object()) bad("chat_template_kwargs", "'chat_template_kwargs' must be an object");
    kwargs = *v;
  }
  json tools;
  const json* choice = field(body, "tool_choice");
  if (const json* v = field(body, "tools"); v && !(choice && *choice == "none")) {  // "none": as if no tools
    if (!v->is_array()) bad("tools", "'tools' must be a list");
    tools = *v;
  }
  try {
    return ctx.chat_template->render(messages, add_generation_prompt, kwargs, tools);
  } catch (const Error& e) {
    bad("messages", std::string("the chat template failed: ") + e.what());
  }
}

GenerationRequest parse_chat_request(const json& body, const ServingContext& ctx) {
  GenerationRequest req;
  req.endpoint = Endpoint::kChat;
  check_fields(body, req.endpoint);
  read_stream_options(body, req);
  check_no_op_fields(body, req.n);
  SamplingParams base = read_sampling(body, ctx);
  const json* lp = field(body, "logprobs");
  req.logprobs = lp && boolean(*lp, "logprobs");
  if (const json* v = field(body, "top_logprobs")) {
    const int top = static_cast<int>(integer(*v, "top_logprobs", 0, 20));
    if (!req.logprobs) bad("top_logprobs", "'top_logprobs' needs 'logprobs': true");
    base.logprobs = top;
  } else if (req.logprobs) {
    base.logprobs = 0;
  }
  req.reply = read_tool_choice(body, ctx, base.structured_outputs);
  req.reply.reasoning_parser = ctx.reasoning_parser;
  // Mistral's [TOOL_CALLS] is a special token: the parser must see it in the text.
  if (req.reply.tool_mode == ToolMode::kAuto && req.reply.tool_parser == "mistral") base.skip_special_tokens = false;
  const std::optional<int> max_tokens = read_max_tokens(body);
  // The template writes the special tokens itself (BOS included), so none are added here.
  req.prompts = {encode(ctx, render_chat(body, ctx), false)};
  finish_params(req, base, max_tokens, ctx);
  return req;
}

std::vector<Submission> expand(const GenerationRequest& req) {
  std::vector<Submission> subs;
  for (size_t p = 0; p < req.prompts.size(); ++p) {
    for (int i = 0; i < req.n; ++i) {
      Submission s{req.prompts[p], req.params[p]};
      if (s.params.seed && i > 0) *s.params.seed += static_cast<uint64_t>(i);
      subs.push_back(std::move(s));
    }
  }
  return subs;
}

json tokenize(const json& body, const ServingContext& ctx) {
  std::vector<int> ids;
  if (field(body, "messages")) {
    bool add_special = false;
    if (const json* v = field(body, "add_special_tokens")) add_special = boolean(*v, "add_special_tokens");
    ids = encode(ctx, render_chat(body, ctx), add_special);
  } else {
    const json* prompt = field(body, "prompt");
    if (!prompt || !prompt->is_string()) bad("prompt", "'prompt' (a string) or 'messages' is required");
    bool add_special = true;
    if (const json* v = field(body, "add_special_tokens")) add_special = boolean(*v, "add_special_tokens");
    ids = encode(ctx, prompt->get<std::string>(), add_special);
  }
  json out = {{"count", ids.size()}, {"max_model_len", ctx.max_model_len}, {"tokens", ids}, {"token_strs", nullptr}};
  if (const json* v = field(body, "return_token_strs"); v && boolean(*v, "return_token_strs")) {
    json strs = json::array();
    for (int id : ids) strs.push_back(ctx.tokenizer->decode(std::span<const int>(&id, 1), false));
    out["token_strs"] = std::move(strs);
  }
  return out;
}

json detokenize(const json& body, const ServingContext& ctx) {
  const Tokenizer& tok = need_tokenizer(ctx);
  const json* v = field(body, "tokens");
  if (!v) bad("tokens", "'tokens' (a list of token ids) is required");
  const std::vector<int> ids = id_list(*v, "tokens");
  for (int id : ids) {
    if (id >= tok.vocab_size()) bad("tokens", "token id " + std::to_string(id) + " is outside the vocabulary");
  }
  return {{"prompt", tok.decode(ids, false)}};
}

}  // namespace nanovllm::server
