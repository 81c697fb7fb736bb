// What this project's own front ends may reach behind the public LLM: its engine.
#pragma once

#include <memory>
#include <string>

#include "backends/native/native_runner.h"
#include "engine/llm_engine.h"
#include "nanovllm/llm.h"

namespace nanovllm::internal {

// Tensor parallelism (src/parallel, MPI) is linked into the programs that register it (the
// nanovllm command), so the library itself needs no MPI: Config::tensor_parallel_size > 1
// calls this factory, and is an error where none is registered.
using TpRunnerFactory = std::unique_ptr<ModelRunner> (*)(const std::string& model_dir, const NativeRunnerOptions& opts,
                                                         int tp_size);
void set_tp_runner_factory(TpRunnerFactory factory);

}  // namespace nanovllm::internal
