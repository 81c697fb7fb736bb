// Splits Jinja template source into text and tag tokens, applying whitespace control as Jinja does.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace nanovllm::jinja {

struct Token {
  enum class Type { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, End };
  Type type;
  std::string text;  // the text, name, operator, or decoded string literal
  int line = 1;
  int col = 1;
};

struct LexOptions {
  bool trim_blocks = true;   // drop the first newline after a block or comment tag
  bool lstrip_blocks = true; // drop spaces before a block or comment tag that starts a line
  bool keep_trailing_newline = false;
};

// Throws nanovllm::Error naming the line (and column) on malformed source.
std::vector<Token> lex(std::string_view source, const LexOptions& options);

// "chat template line L col C: " — the prefix of every error about a template position.
std::string location(int line, int col);

}  // namespace nanovllm::jinja
