// The tokenizer and chat template a GGUF file carries (tokenizer.ggml.*, tokenizer.chat_template),
// as the tokenizer.json and tokenizer_config.json of the checkpoint it was converted from.
#pragma once

#include <memory>

#include <nlohmann/json_fwd.hpp>

#include "model/gguf.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/hf_tokenizer.h"

namespace nanovllm {

// The tokenizer.json that tokenizer.ggml.* describes. model "gpt2": byte-level BPE with the
// pre-tokenizer named by tokenizer.ggml.pre (llama.cpp's names: smollm, llama-bpe, qwen2,
// gpt-2, ...); model "llama": SentencePiece BPE with byte fallback, merges derived from the
// pieces as transformers' LlamaConverter does. Control tokens become special added tokens,
// user-defined ones plain added tokens; tokenizer.ggml.add_bos_token adds the bos.
// Throws Error naming the file and key for anything else.
nlohmann::json gguf_tokenizer_json(const GgufFile& file);

std::unique_ptr<HfTokenizer> gguf_tokenizer(const GgufFile& file);

// tokenizer.chat_template with bos_token / eos_token / unk_token / pad_token set from the ids of
// tokenizer.ggml.*; Error when the file has no template.
ChatTemplate gguf_chat_template(const GgufFile& file);

}  // namespace nanovllm
