// What this project's own front ends may reach behind the public LLM: its engine.
#pragma once

#include "engine/llm_engine.h"
#include "nanovllm/llm.h"
