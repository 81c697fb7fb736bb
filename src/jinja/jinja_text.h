// Python str semantics on UTF-8 text for the Jinja engine: code points, whitespace, strip, split.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nanovllm::jinja {

// Decodes UTF-8 into code points; an invalid byte becomes its own code point 0xDC80+byte
// (Python's surrogateescape) so that encode(decode(s)) == s for any bytes.
std::u32string utf8_decode(std::string_view s);
std::string utf8_encode(std::u32string_view cps);
void utf8_append(std::string& out, char32_t cp);
bool is_ascii(std::string_view s);
size_t utf8_length(std::string_view s);  // len() of a Python str

bool py_isspace(char32_t c);  // str.isspace() for one code point

// str.strip/lstrip/rstrip; chars == nullptr strips whitespace.
std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right);

// str.split(sep, maxsplit) / str.split() (whitespace) / str.rsplit.
std::vector<std::string> py_split(std::string_view s, const std::string* sep, int64_t maxsplit);
std::vector<std::string> py_rsplit(std::string_view s, const std::string* sep, int64_t maxsplit);

std::string py_replace(std::string_view s, std::string_view old, std::string_view repl, int64_t count);
int64_t py_count(std::string_view s, std::string_view sub);
int64_t py_find(std::string_view s, std::string_view sub, bool reverse);  // in code points, -1 if absent

// ASCII-only case mapping (non-ASCII letters are left as they are).
std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
std::string py_capitalize(std::string_view s);
std::string py_title(std::string_view s);  // str.title()

std::string py_repr_string(std::string_view s);  // repr() of a str, with Python's quote choice

}  // namespace nanovllm::jinja
