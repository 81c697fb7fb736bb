// Test doubles for the engine: a model whose next token is a hash of the context it reads back
// from its own paged "KV cache", and a tiny byte-level tokenizer. Test-only, never a product path.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "engine/model_runner.h"
#include "engine/tokenizer.h"

namespace nanovllm::testing {

constexpr int kFakeBos = 0;
constexpr int kFakeEos = 1;

// The reference next token of a context: what any correct engine must produce greedily.
inline uint64_t fake_context_hash(const std::vector<int>& context) {
  uint64_t h = 1469598103934665603ULL;
  for (int t : context) h = (h ^ static_cast<uint64_t>(t + 1)) * 1099511628211ULL;
  return h ^ (h >> 29);
}

inline int fake_next_token(const std::vector<int>& context, int vocab) {
  return static_cast<int>(fake_context_hash(context) % static_cast<uint64_t>(vocab));
}

// Every cache slot remembers which (token, position) was written to it. A forward reads the
// context of each sampling position back through the block table, so a wrong block table, a
// stale prefix-cache hit or a skipped write changes the output (or throws).
class FakeRunner : public ModelRunner {
 public:
  explicit FakeRunner(int vocab = 64, int max_len = 4096) {
    info_.architecture = "FakeForCausalLM";
    info_.vocab_size = vocab;
    info_.max_position_embeddings = max_len;
    info_.bos_token_id = kFakeBos;
    info_.eos_token_ids = {kFakeEos};
  }

  int64_t capacity_bytes = 64LL << 20;  // what the fake "device" has free for KV
  int allocated_blocks = 0;

  const ModelInfo& info() const override { return info_; }
  int64_t kv_block_bytes(int block_size) const override { return 8LL * block_size; }
  int64_t kv_capacity_bytes() const override { return capacity_bytes; }
  void allocate_kv_cache(int num_blocks, int block_size) override {
    allocated_blocks = num_blocks;
    block_size_ = block_size;
    slots_.assign(static_cast<size_t>(num_blocks) * block_size, {-1, -1});
  }

  void forward(const Batch& batch, Logits* out) override {
    out->rows = batch.num_sampled();
    out->vocab = info_.vocab_size;
    out->data.assign(static_cast<size_t>(out->rows) * out->vocab, 0.0f);
    // The contract: positions below num_cached hold KV from earlier steps, not from this one.
    for (const SeqSlice& s : batch.seqs) {
      for (int p = 0; p < s.num_cached; ++p) {
        if (slot(s, p).second != p) throw std::logic_error("cached position " + std::to_string(p) + " has no KV");
      }
    }
    int t = 0, row = 0;
    for (const SeqSlice& s : batch.seqs) {
      for (int j = 0; j < s.num_new; ++j, ++t) {
        if (batch.positions[t] != s.num_cached + j) throw std::logic_error("bad position");
        slot(s, s.num_cached + j) = {batch.token_ids[t], s.num_cached + j};
      }
      if (s.sample) fill_row(read_context(s), out->row(row++));
    }
    ++num_forwards;
    max_tokens_in_step = std::max(max_tokens_in_step, batch.num_tokens());
  }

  int num_forwards = 0;
  int max_tokens_in_step = 0;

 private:
  std::pair<int, int>& slot(const SeqSlice& s, int pos) {
    const int blk = pos / block_size_;
    if (blk >= static_cast<int>(s.block_table.size())) throw std::logic_error("position beyond block table");
    return slots_.at(static_cast<size_t>(s.block_table[blk]) * block_size_ + pos % block_size_);
  }

  std::vector<int> read_context(const SeqSlice& s) {
    std::vector<int> ctx;
    for (int p = 0; p < s.num_cached + s.num_new; ++p) {
      const auto [token, pos] = slot(s, p);
      if (pos != p) throw std::logic_error("read KV that was never written at position " + std::to_string(p));
      ctx.push_back(token);
    }
    return ctx;
  }

  // A peaked distribution that depends only on the context, so seeded sampling is reproducible.
  void fill_row(const std::vector<int>& ctx, float* row) const {
    const uint64_t h = fake_context_hash(ctx);
    for (int v = 0; v < info_.vocab_size; ++v) {
      uint64_t x = (h + static_cast<uint64_t>(v)) * 0x9e3779b97f4a7c15ULL;
      row[v] = static_cast<float>((x ^ (x >> 31)) % 1000) / 1000.0f;
    }
    row[h % static_cast<uint64_t>(info_.vocab_size)] += 3.0f;
  }

  ModelInfo info_;
  int block_size_ = 0;
  std::vector<std::pair<int, int>> slots_;
};

// Greedy reference: the output a correct engine must give for this prompt.
inline std::vector<int> fake_reference(std::vector<int> tokens, int max_tokens, bool ignore_eos,
                                       int vocab, int max_len = 1 << 30) {
  std::vector<int> out;
  while (static_cast<int>(out.size()) < max_tokens && static_cast<int>(tokens.size()) < max_len) {
    const int t = fake_next_token(tokens, vocab);
    tokens.push_back(t);
    out.push_back(t);
    if (t == kFakeEos && !ignore_eos) break;
  }
  return out;
}

// Byte-level toy tokenizer: 0 = BOS, 1 = EOS (special), 2..27 = 'a'..'z', 28 = ' ',
// 29..31 = the three bytes of "€" (so text can end mid-character), 32.. = 'A'...
class FakeTokenizer : public Tokenizer {
 public:
  std::vector<int> encode(std::string_view text, bool add_special_tokens) const override {
    std::vector<int> ids;
    if (add_special_tokens) ids.push_back(kFakeBos);
    for (unsigned char c : text) {
      if (c >= 'a' && c <= 'z') ids.push_back(2 + c - 'a');
      else if (c == ' ') ids.push_back(28);
      else if (c >= 0xE2) ids.push_back(29);
      else if (c == 0x82) ids.push_back(30);
      else if (c == 0xAC) ids.push_back(31);
      else if (c >= 'A' && c < 'A' + 32) ids.push_back(32 + c - 'A');
    }
    return ids;
  }
  std::string decode(std::span<const int> ids, bool skip_special_tokens) const override {
    std::string bytes;
    for (int id : ids) {
      if (id <= 1) {
        if (!skip_special_tokens) bytes += id == 0 ? "<s>" : "</s>";
      } else if (id <= 27) bytes += static_cast<char>('a' + id - 2);
      else if (id == 28) bytes += ' ';
      else if (id <= 31) bytes += static_cast<char>(id == 29 ? 0xE2 : id == 30 ? 0x82 : 0xAC);
      else bytes += static_cast<char>('A' + id - 32);
    }
    return sanitize(bytes);
  }
  int vocab_size() const override { return 64; }
  std::optional<int> bos_token_id() const override { return kFakeBos; }
  std::optional<int> eos_token_id() const override { return kFakeEos; }

 private:
  // Replaces each byte of an incomplete "€" with U+FFFD, as a byte-level decoder would.
  static std::string sanitize(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      const unsigned char c = s[i];
      if (c < 0x80) out += s[i];
      else if (c == 0xE2 && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x82 &&
               static_cast<unsigned char>(s[i + 2]) == 0xAC) {
        out += s.substr(i, 3);
        i += 2;
      } else out += "\xEF\xBF\xBD";
    }
    return out;
  }
};

}  // namespace nanovllm::testing
