// The tokenizer interface is public (embedders read LLM::tokenizer()); the engine includes it here.
#pragma once

#include "nanovllm/tokenizer.h"
