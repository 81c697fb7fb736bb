// BPE merges by rank (lowest rank first, leftmost on ties: the order of tokenizers' heap), over
// symbol ids so that a merge lookup is one hash of a pair of ints.
#include "tokenizer/bpe_model.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <tuple>

#include "nanovllm/error.h"
#include "tokenizer/unicode.h"

namespace nanovllm {

using json = nlohmann::json;

namespace {

struct ByteTable {
  std::array<char32_t, 256> to_char{};
  std::unordered_map<char32_t, int> to_byte;
  ByteTable() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
      to_char[b] = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      to_byte[to_char[b]] = b;
    }
  }
};
const ByteTable& byte_table() {
  static const ByteTable t;
  return t;
}

uint64_t pair_key(int a, int b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }

std::string mapped_bytes(std::string_view raw) {
  std::string s;
  for (unsigned char c : raw) unicode::append_utf8(s, byte_to_char(c));
  return s;
}

}  // namespace

char32_t byte_to_char(uint8_t b) { return byte_table().to_char[b]; }
int char_to_byte(char32_t cp) {
  auto it = byte_table().to_byte.find(cp);
  return it == byte_table().to_byte.end() ? -1 : it->second;
}

BpeModel::BpeModel(const json& spec, bool byte_level) : byte_level_(byte_level) {
  if (spec.value("type", "BPE") != "BPE") throw Error("unsupported model type '" + spec.value("type", "") + "' (only BPE)");
  if (spec.contains("dropout") && spec["dropout"].is_number() && spec["dropout"].get<double>() > 0)
    throw Error("BPE dropout is a training option and is not supported");
  load_vocab(spec.at("vocab"));
  auto str_or_empty = [&](const char* k) { return spec.contains(k) && spec[k].is_string() ? spec[k].get<std::string>() : ""; };
  subword_prefix_ = str_or_empty("continuing_subword_prefix");
  word_suffix_ = str_or_empty("end_of_word_suffix");
  ignore_merges_ = spec.value("ignore_merges", false);
  byte_fallback_ = spec.value("byte_fallback", false);
  fuse_unk_ = spec.value("fuse_unk", false);
  if (const std::string unk = str_or_empty("unk_token"); !unk.empty()) {
    auto it = vocab_.find(unk);
    if (it == vocab_.end()) throw Error("unk_token '" + unk + "' is not in the vocabulary");
    unk_id_ = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    auto it = vocab_.find(std::string_view(name));
    fallback_ids_[b] = it == vocab_.end() ? -1 : it->second;
    if (byte_level_) {
      // A vocabulary may lack some bytes' characters (SmolLM2 has no 0x04, nor bytes that UTF-8
      // never uses): tokenizers then drops such a byte, having no unk to put in its place.
      auto bt = vocab_.find(mapped_bytes(std::string(1, static_cast<char>(b))));
      byte_ids_[b] = bt == vocab_.end() ? -1 : bt->second;
    }
  }
  if (byte_level_ && (!subword_prefix_.empty() || !word_suffix_.empty()))
    throw Error("byte-level BPE with continuing_subword_prefix/end_of_word_suffix is not supported");
  load_merges(spec.at("merges"));
}

int parse_token_id(const json& v, const std::string& what) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= kMaxTokenId)
    throw Error(what + ": token id " + v.dump() + " is not an integer in [0, " + std::to_string(kMaxTokenId) + ")");
  return v.get<int>();
}

// Ids index id_to_token_, so each is checked (range, one token per id) before the table is
// sized. Ids may leave gaps, but not more gaps than entries: a handful of entries with huge
// ids would otherwise allocate a table of millions.
void BpeModel::load_vocab(const json& vocab) {
  if (!vocab.is_object()) throw Error("model.vocab is not an object");
  int max_id = -1;
  for (const auto& [tok, v] : vocab.items()) {
    const int id = parse_token_id(v, "model.vocab['" + tok + "']");
    vocab_.emplace(tok, id);
    max_id = std::max(max_id, id);
  }
  if (static_cast<size_t>(max_id) >= 2 * vocab_.size() + 256)
    throw Error("model.vocab: id " + std::to_string(max_id) + " is far beyond its " + std::to_string(vocab_.size()) +
                " entries (ids must be nearly dense)");
  id_to_token_.resize(static_cast<size_t>(max_id + 1));
  std::vector<bool> seen(id_to_token_.size());
  for (const auto& [tok, id] : vocab_) {
    if (seen[id])
      throw Error("model.vocab: id " + std::to_string(id) + " is given to both '" + id_to_token_[id] + "' and '" + tok + "'");
    seen[id] = true;
    id_to_token_[id] = tok;
  }
}

// Splits "a b" into its two tokens. A token may itself contain spaces (Llama-2's vocabulary has
// "  " and "▁ "), so when the string holds several spaces the cut is the one point where both
// halves and their join are in the vocabulary.
static std::pair<std::string, std::string> split_merge_string(const std::string& m, const TokenMap& vocab) {
  const size_t first = m.find(' ');
  if (first != std::string::npos && m.find(' ', first + 1) == std::string::npos)
    return {m.substr(0, first), m.substr(first + 1)};
  std::vector<size_t> cuts;
  for (size_t i = 1; i + 1 < m.size(); ++i) {
    if (m[i] != ' ') continue;
    const std::string a = m.substr(0, i), b = m.substr(i + 1);
    if (vocab.count(a) && vocab.count(b) && vocab.count(a + b)) cuts.push_back(i);
  }
  if (cuts.size() != 1) throw Error("merge '" + m + "' is not two vocabulary tokens separated by a space");
  return {m.substr(0, cuts[0]), m.substr(cuts[0] + 1)};
}

void BpeModel::load_merges(const json& merges) {
  merges_.reserve(merges.size() * 2);
  int rank = 0;
  for (const json& m : merges) {
    std::pair<std::string, std::string> ab;
    if (m.is_string()) ab = split_merge_string(m.get<std::string>(), vocab_);
    else if (m.is_array() && m.size() == 2) ab = {m[0].get<std::string>(), m[1].get<std::string>()};
    else throw Error("merge #" + std::to_string(rank) + " is neither \"a b\" nor [a, b]");
    const std::string joined = ab.first + ab.second.substr(std::min(subword_prefix_.size(), ab.second.size()));
    auto a = vocab_.find(ab.first), b = vocab_.find(ab.second), j = vocab_.find(joined);
    if (a == vocab_.end() || b == vocab_.end() || j == vocab_.end())
      throw Error("merge #" + std::to_string(rank) + " '" + ab.first + " " + ab.second + "' uses a token not in the vocabulary");
    merges_.emplace(pair_key(a->second, b->second), Merge{rank, j->second});
    ++rank;
  }
}

std::optional<int> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string& BpeModel::id_to_token(int id) const {
  static const std::string empty;
  return id >= 0 && id < size() ? id_to_token_[id] : empty;
}

const BpeModel::Merge* BpeModel::find_merge(int a, int b) const {
  auto it = merges_.find(pair_key(a, b));
  return it == merges_.end() ? nullptr : &it->second;
}

// SentencePiece-style start: one symbol per character; unknown characters become <0xXX> bytes
// (byte_fallback) or unk (fused when fuse_unk), exactly in tokenizers' order.
void BpeModel::initial_chars(std::string_view word, std::vector<int>& ids, std::vector<int>& lens) const {
  std::optional<std::pair<int, int>> unk;  // pending (id, byte length)
  std::string key;
  for (size_t i = 0; i < word.size();) {
    const size_t start = i;
    unicode::next_code_point(word, i);
    const int n = static_cast<int>(i - start);
    key.assign(start > 0 ? subword_prefix_ : std::string());
    key.append(word.substr(start, n));
    if (i == word.size()) key += word_suffix_;
    if (auto it = vocab_.find(key); it != vocab_.end()) {
      if (unk) ids.push_back(unk->first), lens.push_back(unk->second), unk.reset();
      ids.push_back(it->second), lens.push_back(n);
      continue;
    }
    if (byte_fallback_ && std::all_of(key.begin(), key.end(), [&](char c) { return fallback_ids_[static_cast<uint8_t>(c)] >= 0; })) {
      for (char c : key) ids.push_back(fallback_ids_[static_cast<uint8_t>(c)]), lens.push_back(1);
      continue;
    }
    if (!unk_id_) continue;  // no unk token: the character is dropped, as in tokenizers
    if (unk && fuse_unk_) {
      unk->second += n;
    } else {
      if (unk) ids.push_back(unk->first), lens.push_back(unk->second);
      unk = std::pair{*unk_id_, n};
    }
  }
  if (unk) ids.push_back(unk->first), lens.push_back(unk->second);
}

void BpeModel::initial_symbols(std::string_view word, std::vector<int>& ids, std::vector<int>& lens) const {
  ids.clear();
  lens.clear();
  if (!byte_level_) return initial_chars(word, ids, lens);
  for (unsigned char c : word)
    if (byte_ids_[c] >= 0) ids.push_back(byte_ids_[c]), lens.push_back(1);
}

void BpeModel::merge_word(std::string_view word, std::vector<int>& out) const {
  if (ignore_merges_) {
    auto it = byte_level_ ? vocab_.find(mapped_bytes(word)) : vocab_.find(word);
    if (it != vocab_.end()) return out.push_back(it->second);
  }
  struct Cand {
    int rank, pos, new_id;
    bool operator<(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  thread_local std::vector<int> ids, lens, prev, next;
  thread_local std::vector<Cand> heap_store;
  initial_symbols(word, ids, lens);
  const int n = static_cast<int>(ids.size());
  prev.resize(n), next.resize(n);
  for (int i = 0; i < n; ++i) prev[i] = i - 1, next[i] = i + 1 < n ? i + 1 : -1;
  std::vector<Cand>& heap = heap_store;  // a max-heap on Cand's order: lowest rank, then leftmost
  heap.clear();
  auto push = [&](int pos) {
    if (const Merge* m = find_merge(ids[pos], ids[next[pos]])) {
      heap.push_back({m->rank, pos, m->new_id});
      std::push_heap(heap.begin(), heap.end());
    }
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    const Cand top = heap.back();
    heap.pop_back();
    const int l = top.pos;
    if (lens[l] == 0 || next[l] < 0) continue;
    const int r = next[l];
    const Merge* m = find_merge(ids[l], ids[r]);
    if (m == nullptr || m->new_id != top.new_id) continue;  // stale: the pair changed since
    ids[l] = top.new_id, lens[l] += lens[r], lens[r] = 0, next[l] = next[r];
    if (next[l] >= 0) prev[next[l]] = l;
    if (prev[l] >= 0) push(prev[l]);
    if (next[l] >= 0) push(l);
  }
  for (int i = 0; i >= 0 && i < n; i = next[i]) out.push_back(ids[i]);
}

void BpeModel::encode_word(std::string_view word, std::vector<int>& out) const {
  const bool cacheable = word.size() <= kMaxCachedWord;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (auto it = cache_.find(word); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t before = out.size();
  merge_word(word, out);
  if (!cacheable) return;
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (cache_.size() >= kCacheCapacity) cache_.clear();  // bounded: start over rather than grow
  cache_.emplace(std::string(word), std::vector<int>(out.begin() + before, out.end()));
}

// transformers' generate_merges (what LlamaConverter uses): every split of a piece into two
// pieces of the vocabulary is a merge, ranked by the merged piece's id, then by the lengths
// of the halves; ties keep the order of the halves' ids.
std::vector<std::string> merges_from_vocab(const std::vector<std::string>& pieces,
                                           const std::map<std::string, int>& vocab, const std::vector<float>* scores) {
  struct Merge {
    int rank;  // the merged piece's id
    std::string left, right;
  };
  std::vector<Merge> merges;
  for (int id = 0; id < static_cast<int>(pieces.size()); ++id) {
    const std::string& p = pieces[id];
    std::vector<Merge> local;
    for (size_t cut = 1; cut < p.size(); ++cut) {  // byte cuts; cuts inside a UTF-8 char never match
      std::string l = p.substr(0, cut), r = p.substr(cut);
      if (vocab.count(l) && vocab.count(r)) local.push_back({id, l, r});
    }
    std::stable_sort(local.begin(), local.end(), [&](const Merge& a, const Merge& b) {
      return std::pair(vocab.at(a.left), vocab.at(a.right)) < std::pair(vocab.at(b.left), vocab.at(b.right));
    });
    merges.insert(merges.end(), local.begin(), local.end());
  }
  auto utf8_len = [](const std::string& s) {
    return std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; });
  };
  if (scores) {  // highest score first, then the longer left and right halves (Python's stable reverse sort)
    std::stable_sort(merges.begin(), merges.end(), [&](const Merge& a, const Merge& b) {
      return std::tuple((*scores)[a.rank], utf8_len(a.left), utf8_len(a.right)) >
             std::tuple((*scores)[b.rank], utf8_len(b.left), utf8_len(b.right));
    });
  } else {
    std::stable_sort(merges.begin(), merges.end(), [&](const Merge& a, const Merge& b) {
      return std::tuple(a.rank, utf8_len(a.left), utf8_len(a.right)) <
             std::tuple(b.rank, utf8_len(b.left), utf8_len(b.right));
    });
  }
  std::vector<std::string> out;
  for (const Merge& m : merges) out.push_back(m.left + " " + m.right);
  return out;
}

}  // namespace nanovllm
