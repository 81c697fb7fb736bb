// The llguidance bridge: our tokenizer handed to llguidance (each token's bytes, a tokenize
// callback), and one LlgMatcher per request behind the engine's Constraint interface.
#include "constraint/llguidance_compiler.h"

#include <llguidance.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <future>

#include <nlohmann/json.hpp>

#include "nanovllm/error.h"
#include "tokenizer/hf_tokenizer.h"

namespace nanovllm {
namespace {

// llguidance marks special tokens (<|im_end|>, <tool_call>, ...) with a leading 0xFF byte, so
// that plain text never produces them and a grammar names them as <|im_end|>.
constexpr char kSpecialMarker = '\xff';

// The tokenize callback: llguidance re-tokenizes the text its lexemes match. Called from
// llguidance's threads; HfTokenizer::encode is const and thread-safe. No exception may
// unwind into Rust: a failure yields no tokens (llguidance then falls back to its own trie).
size_t tokenize_callback(const void* user, const uint8_t* bytes, size_t len, uint32_t* out, size_t out_len) {
  const auto* tok = static_cast<const HfTokenizer*>(user);
  try {
    const std::vector<int> ids = tok->encode(std::string_view(reinterpret_cast<const char*>(bytes), len),
                                             /*add_special_tokens=*/false, /*split_special_tokens=*/true);
    for (size_t i = 0; i < ids.size() && i < out_len; ++i) out[i] = static_cast<uint32_t>(ids[i]);
    return ids.size();
  } catch (...) {
    return 0;
  }
}

class LlgTokenizerHandle {
 public:
  LlgTokenizerHandle(std::shared_ptr<const HfTokenizer> tokenizer, int vocab_size, const std::vector<int>& eos_ids)
      : tokenizer_(std::move(tokenizer)) {
    if (eos_ids.empty()) throw Error("structured outputs need an end-of-sequence token; the model has none");
    std::vector<uint32_t> lens(static_cast<size_t>(vocab_size));
    std::string bytes;
    for (int id = 0; id < vocab_size; ++id) {
      std::string t = id < tokenizer_->vocab_size() ? tokenizer_->token_bytes(id) : "";
      if (tokenizer_->is_special(id) && !t.empty()) t.insert(t.begin(), kSpecialMarker);
      lens[id] = static_cast<uint32_t>(t.size());
      bytes += t;
    }
    std::vector<uint32_t> extra(eos_ids.begin() + 1, eos_ids.end());
    LlgTokenizerInitV2 init{};
    init.struct_size = sizeof(init);
    init.vocab_size = static_cast<uint32_t>(vocab_size);
    init.tok_eos = static_cast<uint32_t>(eos_ids[0]);
    init.tok_eos_extra = extra.data();
    init.tok_eos_extra_count = static_cast<uint32_t>(extra.size());
    init.token_lens = lens.data();
    init.token_bytes = reinterpret_cast<const uint8_t*>(bytes.data());
    init.tokenize_assumes_string = true;  // encode() runs a UTF-8 pre-tokenizer
    init.tokenize_fn = tokenize_callback;
    init.tokenize_user_data = tokenizer_.get();
    char err[1024] = {0};
    handle_ = llg_new_tokenizer_v2(&init, err, sizeof err);
    if (!handle_) throw Error(std::string("llguidance refused the tokenizer: ") + err);
  }
  ~LlgTokenizerHandle() { llg_free_tokenizer(handle_); }
  LlgTokenizerHandle(const LlgTokenizerHandle&) = delete;
  LlgTokenizerHandle& operator=(const LlgTokenizerHandle&) = delete;

  const LlgTokenizer* get() const { return handle_; }

 private:
  std::shared_ptr<const HfTokenizer> tokenizer_;  // the callback's user data must outlive handle_
  LlgTokenizer* handle_ = nullptr;
};

class LlgConstraint final : public Constraint {
 public:
  LlgConstraint(std::shared_ptr<const LlgTokenizerHandle> tok, LlgMatcher* m) : tok_(std::move(tok)), m_(m) {}
  ~LlgConstraint() override { llg_free_matcher(m_); }

  void fill_mask(std::span<uint32_t> mask) override {
    const size_t need = llg_matcher_get_mask_byte_size(m_);
    NV_CHECK(need <= mask.size_bytes(), "the grammar mask is wider than the logits row");
    std::fill(mask.begin(), mask.end(), 0u);
    if (llg_matcher_compute_mask_into(m_, mask.data(), need) != 0) fail("computing the token mask");
  }

  void accept(int token) override {
    if (llg_matcher_consume_token(m_, static_cast<uint32_t>(token)) != 0) fail("token " + std::to_string(token));
  }

  bool is_stopped() const override { return llg_matcher_is_stopped(m_); }

 private:
  [[noreturn]] void fail(const std::string& what) {
    const char* e = llg_matcher_get_error(m_);
    throw Error("structured output: " + what + ": " + (e ? e : "unknown llguidance error"));
  }

  std::shared_ptr<const LlgTokenizerHandle> tok_;  // the matcher refers to it
  LlgMatcher* m_;
};

// The tokenizer set-up (~0.3 s of llguidance work on a 152k vocabulary, seconds on a busy
// machine) and the first JSON compile (which builds llguidance's shared lexer caches) run on a
// helper thread from start-up, so neither delays the model load nor stalls the engine thread
// on the first structured request of a server that has been up for a moment.
class LlgCompiler final : public ConstraintCompiler {
 public:
  LlgCompiler(std::shared_ptr<const HfTokenizer> tokenizer, int vocab_size, std::vector<int> eos_ids)
      : tok_(std::async(std::launch::async, [=] {
          auto tok = std::make_shared<const LlgTokenizerHandle>(tokenizer, vocab_size, eos_ids);
          StructuredOutputs warm;
          warm.json_object = true;
          try {
            compile_with(tok, warm);
          } catch (const Error&) {  // a real request will report it
          }
          return tok;
        }).share()) {}

  std::unique_ptr<Constraint> compile(const StructuredOutputs& spec) const override {
    return compile_with(tok_.get(), spec);  // rethrows a tokenizer set-up failure
  }

 private:
  static std::unique_ptr<Constraint> compile_with(const std::shared_ptr<const LlgTokenizerHandle>& tok,
                                                  const StructuredOutputs& spec) {
    const GrammarText g = grammar_text(spec);
    LlgConstraintInit init;
    llg_constraint_init_set_defaults(&init, tok->get());
    init.log_stderr_level = 0;  // errors come back as exceptions, not as stderr noise
    LlgMatcher* m = llg_new_matcher(&init, g.type.c_str(), g.text.c_str());
    if (const char* e = llg_matcher_get_error(m)) {
      std::string msg = e;
      llg_free_matcher(m);
      throw Error(describe(g.type) + " is invalid: " + msg);
    }
    return std::make_unique<LlgConstraint>(tok, m);
  }

  static std::string describe(const std::string& type) {
    if (type == "json") return "the JSON schema";
    if (type == "regex") return "the regular expression";
    if (type == "lark") return "the grammar";
    return "the structured output";
  }

  std::shared_future<std::shared_ptr<const LlgTokenizerHandle>> tok_;
};

// GBNF's lexical differences from Lark: rule names may hold dashes (Lark's may not) and a
// character class [a-z] is a bare term (Lark writes a regex, /[a-z]/).
std::string gbnf_terms_to_lark(const std::string& s) {
  std::string out;
  bool in_string = false, in_class = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string || in_class) {
      if (c == '\\' && i + 1 < s.size()) {
        out += c;
        out += s[++i];
      } else if (in_string) {
        out += c;
        in_string = c != '"';
      } else if (c == ']') {
        out += "]/";
        in_class = false;
      } else {
        out += c == '/' ? "\\/" : std::string(1, c);
      }
      continue;
    }
    if (c == '"') in_string = true;
    if (c == '[') {
      in_class = true;
      out += "/[";
      continue;
    }
    if (c == '#') {  // comment to the end of the line
      while (i < s.size() && s[i] != '\n') out += s[i++];
      if (i < s.size()) out += '\n';
      continue;
    }
    const bool in_name = c == '-' && i > 0 && i + 1 < s.size() &&
                         (std::isalnum(static_cast<unsigned char>(s[i - 1])) || s[i - 1] == '_') &&
                         std::isalpha(static_cast<unsigned char>(s[i + 1]));
    out += in_name ? '_' : c;
  }
  return out;
}

}  // namespace

std::string gbnf_to_lark(const std::string& grammar) {
  if (grammar.find("::=") == std::string::npos) return grammar;  // Lark already
  std::string out = gbnf_terms_to_lark(grammar);
  for (size_t pos = 0; (pos = out.find("::=", pos)) != std::string::npos;) out.replace(pos, 3, ":");
  return "start: root\n" + out;
}

// llguidance lets JSON have any whitespace between tokens by default; a weak model then fills
// its whole budget with blanks. vLLM asks for compact JSON the same way (whitespace_flexible
// false) unless the schema says otherwise in its own "x-guidance".
std::string compact_json_schema(const std::string& schema) {
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(schema, nullptr, false);
  if (j.is_discarded()) return schema;  // llguidance names the problem
  if (j.is_boolean()) j = j.get<bool>() ? nlohmann::ordered_json::object() : nlohmann::ordered_json{{"not", nlohmann::ordered_json::object()}};
  if (j.is_object() && !j.contains("x-guidance")) j["x-guidance"] = {{"whitespace_flexible", false}};
  return j.dump();
}

GrammarText grammar_text(const StructuredOutputs& spec) {
  if (!spec.json.empty()) return {"json", compact_json_schema(spec.json)};
  if (spec.json_object) return {"json", compact_json_schema(R"({"type": "object"})")};
  if (!spec.regex.empty()) return {"regex", spec.regex};
  if (!spec.choice.empty()) {
    std::string lark = "start: ";
    for (size_t i = 0; i < spec.choice.size(); ++i) {
      if (i > 0) lark += " | ";
      lark += nlohmann::json(spec.choice[i]).dump();  // Lark string literals take JSON escapes
    }
    return {"lark", lark};
  }
  if (!spec.grammar.empty()) return {"lark", gbnf_to_lark(spec.grammar)};
  throw Error("structured output: nothing to constrain");
}

std::shared_ptr<const ConstraintCompiler> make_llguidance_compiler(std::shared_ptr<const HfTokenizer> tokenizer,
                                                                   int vocab_size, std::vector<int> eos_ids) {
  if (eos_ids.empty()) throw Error("structured outputs need an end-of-sequence token; the model has none");
  return std::make_shared<LlgCompiler>(std::move(tokenizer), vocab_size, std::move(eos_ids));
}

}  // namespace nanovllm
