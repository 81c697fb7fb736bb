// Tensor parallelism over MPI: `mpirun -np N nanovllm generate|serve --tensor-parallel-size N`.
// Rank 0 runs the engine (scheduler, sampler, tokenizer, server) with a runner that broadcasts
// each step's batch to the other ranks, computes its own shard of the step, and gathers the
// vocabulary slices of the logits. The other ranks only hold their shards and follow.
#pragma once

#include <memory>
#include <string>

#include "backends/native/native_runner.h"
#include "engine/model_runner.h"

namespace nanovllm {

// Initializes MPI (once per process) and checks that the job has exactly `tp_size` ranks.
// On rank 0: returns the runner. On every other rank: loads its shard, serves rank 0's steps
// until rank 0's runner is destroyed, then exits the process (status 0), so that any program
// that makes an LLM (generate, serve, bench) works under mpirun unchanged.
std::unique_ptr<ModelRunner> make_tp_runner(const std::string& model_dir, const NativeRunnerOptions& opts, int tp_size);

}  // namespace nanovllm
