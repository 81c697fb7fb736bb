// Renders a model's chat template into a prompt, preparing inputs as transformers does.
#include "tokenizer/chat_template.h"

#include "model/gguf_model.h"
#include "tokenizer/gguf_tokenizer.h"

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "nanovllm/error.h"
#include "common/json.h"
#include "jinja/jinja.h"

namespace nanovllm {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

// transformers' SPECIAL_TOKENS_ATTRIBUTES: the named tokens every template sees as variables.
const char* const kSpecialTokenNames[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                          "pad_token", "cls_token", "mask_token"};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error("cannot read " + p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ojson read_json(const fs::path& p) { return parse_json<ojson>(read_file(p), p.string()); }

// Messages, tools and kwargs may come from C++ callers as already-built JSON of any depth;
// copying, dumping or converting one recurses per level, so the depth is checked first, without
// recursion, against the limit template values have anyway.
void check_depth(const ojson& root, const char* what) {
  std::vector<std::pair<const ojson*, int>> pending{{&root, 0}};
  while (!pending.empty()) {
    auto [j, depth] = pending.back();
    pending.pop_back();
    if (!j->is_structured()) continue;
    if (depth >= jinja::kMaxValueDepth)
      throw Error(std::string(what) + ": nested deeper than " + std::to_string(jinja::kMaxValueDepth) + " levels");
    for (const auto& child : *j) pending.emplace_back(&child, depth + 1);
  }
}

// A special token is a string or an AddedToken object {"content": ...}.
std::optional<std::string> token_text(const ojson& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

std::vector<std::pair<std::string, std::string>> read_special_tokens(const ojson& config, const fs::path& dir) {
  ojson map = ojson::object();
  if (fs::exists(dir / "special_tokens_map.json")) map = read_json(dir / "special_tokens_map.json");
  std::vector<std::pair<std::string, std::string>> out;
  for (const char* name : kSpecialTokenNames) {
    std::optional<std::string> text;
    if (config.contains(name)) text = token_text(config[name]);
    if (!text && map.contains(name)) text = token_text(map[name]);
    if (text) out.emplace_back(name, *text);
  }
  return out;
}

std::map<std::string, std::string> read_template_sources(const ojson& config, const fs::path& dir) {
  std::map<std::string, std::string> sources;
  if (fs::exists(dir / "chat_template.jinja")) sources["default"] = read_file(dir / "chat_template.jinja");
  if (fs::is_directory(dir / "additional_chat_templates"))
    for (const auto& entry : fs::directory_iterator(dir / "additional_chat_templates"))
      if (entry.path().extension() == ".jinja") sources[entry.path().stem().string()] = read_file(entry.path());
  if (!sources.empty()) return sources;
  const ojson t = config.value("chat_template", ojson());
  if (t.is_string()) {
    sources["default"] = t.get<std::string>();
  } else if (t.is_array()) {
    for (const auto& item : t) {
      if (!item.is_object() || !item.contains("name") || !item.contains("template"))
        throw Error("chat_template list entries need \"name\" and \"template\"");
      sources[item["name"].get<std::string>()] = item["template"].get<std::string>();
    }
  } else if (t.is_object()) {
    for (const auto& [name, src] : t.items()) sources[name] = src.get<std::string>();
  }
  return sources;
}

// transformers' _normalize_chat_messages and _alias_reasoning_fields: keys holding null are
// dropped, and reasoning given as reasoning_content / thinking / reasoning is visible under
// both "thinking" (first) and "reasoning_content".
ojson normalize_message(const ojson& message) {
  if (!message.is_object()) throw Error("chat messages must be JSON objects, got: " + message.dump());
  ojson m = ojson::object();
  for (const auto& [k, v] : message.items())
    if (!v.is_null()) m[k] = v;
  const ojson* reasoning = nullptr;
  for (const char* key : {"reasoning_content", "thinking", "reasoning"})
    if (!reasoning && m.contains(key)) reasoning = &m[key];
  if (!reasoning) return m;
  ojson out = ojson::object();
  out["thinking"] = *reasoning;
  for (const auto& [k, v] : m.items()) out[k] = v;
  out["reasoning_content"] = *reasoning;
  return out;
}

}  // namespace

ChatTemplate ChatTemplate::from_tokenizer_config(const std::string& path_or_dir) {
  if (!fs::is_directory(path_or_dir) && is_gguf_file(path_or_dir)) return gguf_chat_template(GgufFile(path_or_dir));
  fs::path p(path_or_dir);
  fs::path config_path = fs::is_directory(p) ? p / "tokenizer_config.json" : p;
  fs::path dir = config_path.parent_path();
  ojson config = fs::exists(config_path) ? read_json(config_path) : ojson::object();
  if (!fs::exists(config_path) && !fs::exists(dir / "chat_template.jinja"))
    throw Error("no tokenizer_config.json in " + dir.string());
  ChatTemplate ct;
  ct.special_tokens_ = read_special_tokens(config, dir);
  for (const auto& [name, source] : read_template_sources(config, dir)) {
    try {
      ct.templates_[name] = std::make_shared<const jinja::Template>(source);
    } catch (const Error& e) {
      throw Error(config_path.string() + ": " + (name == "default" ? "" : "template '" + name + "': ") + e.what());
    }
  }
  if (ct.templates_.empty())
    throw Error(config_path.string() + " has no chat_template; this model cannot format chat messages");
  return ct;
}

ChatTemplate ChatTemplate::from_file(const std::string& template_path, const std::string& tokenizer_dir) {
  if (!fs::is_regular_file(template_path)) throw Error("chat template file not found: " + template_path);
  const fs::path config_path = fs::path(tokenizer_dir) / "tokenizer_config.json";
  ChatTemplate ct;
  ct.special_tokens_ = read_special_tokens(fs::exists(config_path) ? read_json(config_path) : ojson::object(),
                                           tokenizer_dir);
  try {
    ct.templates_["default"] = std::make_shared<const jinja::Template>(read_file(template_path));
  } catch (const Error& e) {
    throw Error(template_path + ": " + e.what());
  }
  return ct;
}

ChatTemplate::ChatTemplate(const std::string& source, std::vector<std::pair<std::string, std::string>> special_tokens)
    : special_tokens_(std::move(special_tokens)) {
  templates_["default"] = std::make_shared<const jinja::Template>(source);
}

std::vector<std::string> ChatTemplate::names() const {
  std::vector<std::string> out;
  for (const auto& kv : templates_) out.push_back(kv.first);
  return out;
}

// transformers' get_chat_template: "tool_use" when tools are given and it exists, else "default".
const jinja::Template& ChatTemplate::select(bool has_tools) const {
  if (has_tools && templates_.count("tool_use")) return *templates_.at("tool_use");
  auto it = templates_.find("default");
  if (it == templates_.end()) {
    if (templates_.size() == 1) return *templates_.begin()->second;
    throw Error("this model has several chat templates and none is named \"default\"");
  }
  return *it->second;
}

std::string ChatTemplate::render(const ojson& messages, bool add_generation_prompt) const {
  return render(messages, add_generation_prompt, ojson::object(), ojson());
}

std::string ChatTemplate::render(const ojson& messages, bool add_generation_prompt, const ojson& extra_kwargs,
                                 const ojson& tools) const {
  if (!messages.is_array()) throw Error("chat messages must be a JSON array");
  if (messages.empty()) throw Error("cannot apply the chat template to an empty conversation");
  if (!extra_kwargs.is_null() && !extra_kwargs.is_object()) throw Error("template kwargs must be a JSON object");
  if (!tools.is_null() && !tools.is_array()) throw Error("tools must be a JSON array");
  check_depth(messages, "chat messages");
  check_depth(extra_kwargs, "template kwargs");
  check_depth(tools, "tools");
  ojson normalized = ojson::array();
  for (const auto& m : messages) normalized.push_back(normalize_message(m));

  jinja::Value context = jinja::Value::dict();
  jinja::Dict& vars = context.as_dict();
  for (const auto& [name, text] : special_tokens_) vars.set(name, jinja::Value(text));
  if (extra_kwargs.is_object()) {
    for (const auto& [k, v] : extra_kwargs.items()) {
      if (k == "messages" || k == "tools" || k == "documents" || k == "add_generation_prompt")
        throw Error("template kwarg '" + k + "' clashes with an argument of apply_chat_template");
      vars.set(k, jinja::Value::from_json(v));
    }
  }
  vars.set("messages", jinja::Value::from_json(normalized));
  vars.set("tools", jinja::Value::from_json(tools));
  vars.set("documents", jinja::Value::none());
  vars.set("add_generation_prompt", jinja::Value(add_generation_prompt));
  return select(!tools.is_null()).render(context);
}

}  // namespace nanovllm
