// Renders a model's chat template (tokenizer_config.json) into a prompt, as transformers'
// apply_chat_template(..., tokenize=False) does.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace nanovllm {

namespace jinja {
class Template;
}

class ChatTemplate {
 public:
  // path_or_dir: a tokenizer_config.json, or the folder holding it, or a GGUF file (its
  // tokenizer.chat_template). The template comes from
  // chat_template.jinja / additional_chat_templates/*.jinja when present (transformers gives
  // those priority), else from "chat_template" (a string, or a list of {"name", "template"}).
  // Special tokens (bos_token, eos_token, ...; strings or AddedToken objects) come from the
  // config and special_tokens_map.json. Throws nanovllm::Error if there is no chat template or
  // it does not parse (the message names the template line).
  static ChatTemplate from_tokenizer_config(const std::string& path_or_dir);

  // The template in a Jinja file (for models whose tokenizer has none), with the special-token
  // variables of tokenizer_dir's tokenizer_config.json when it has one.
  static ChatTemplate from_file(const std::string& template_path, const std::string& tokenizer_dir);

  // One template given as source, with the special-token variables it sees (e.g. bos_token).
  ChatTemplate(const std::string& source, std::vector<std::pair<std::string, std::string>> special_tokens);

  // messages: a JSON array of message objects. Parse JSON with nlohmann::ordered_json so that
  // key order (visible through tojson) is kept as the caller wrote it. extra_kwargs (an object)
  // become template variables (e.g. enable_thinking); tools (an array, or null) are passed as
  // `tools`. Throws nanovllm::Error on bad input or template errors, including the template's
  // own raise_exception(). Const and thread-safe: each call renders with its own state.
  std::string render(const nlohmann::ordered_json& messages, bool add_generation_prompt) const;
  std::string render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                     const nlohmann::ordered_json& extra_kwargs, const nlohmann::ordered_json& tools) const;

  // Names of the available templates ("default" for a single one).
  std::vector<std::string> names() const;

 private:
  ChatTemplate() = default;
  const jinja::Template& select(bool has_tools) const;

  std::map<std::string, std::shared_ptr<const jinja::Template>> templates_;
  std::vector<std::pair<std::string, std::string>> special_tokens_;
};

}  // namespace nanovllm
