// The MPI side of tensor parallelism: one command stream from rank 0 (allocate the KV cache,
// run a step, stop), two allreduces per layer inside the decoder, a gather of the logits.
#include "parallel/tp_runner.h"

#include <mpi.h>
#include <omp.h>

#include <csignal>
#include <cstdlib>

#include "backends/host_memory.h"
#include "model/model_config.h"
#include "model/transformer.h"
#include "model/weights.h"
#include "nanovllm/error.h"
#include "parallel/tp_shard.h"

namespace nanovllm {

namespace {

enum Command : int { kAllocate = 1, kForward = 2, kStop = 3 };

void check_mpi(int rc, const char* what) {
  if (rc != MPI_SUCCESS) throw Error(std::string("MPI ") + what + " failed (code " + std::to_string(rc) + ")");
}

// The engine thread of `serve` makes the MPI calls, not the thread that initialized MPI:
// MPI_THREAD_SERIALIZED allows that (one thread at a time, which the engine guarantees).
TpRank init_mpi(int tp_size) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "init");
    if (provided < MPI_THREAD_SERIALIZED) throw Error("this MPI library does not support MPI_THREAD_SERIALIZED");
    std::atexit([] {
      int finalized = 0;
      MPI_Finalized(&finalized);
      if (!finalized) MPI_Finalize();
    });
  }
  TpRank r;
  MPI_Comm_rank(MPI_COMM_WORLD, &r.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &r.size);
  if (r.size != tp_size)
    throw Error("--tensor-parallel-size " + std::to_string(tp_size) + " needs exactly that many MPI ranks (mpirun -np " +
                std::to_string(tp_size) + "); this job has " + std::to_string(r.size));
  return r;
}

void allreduce_sum(float* data, size_t n) {
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "allreduce");
}

void broadcast_ints(std::vector<int>& v) {
  int n = static_cast<int>(v.size());
  check_mpi(MPI_Bcast(&n, 1, MPI_INT, 0, MPI_COMM_WORLD), "broadcast");
  v.resize(static_cast<size_t>(n));
  check_mpi(MPI_Bcast(v.data(), n, MPI_INT, 0, MPI_COMM_WORLD), "broadcast");
}

// A step as ints: [block_size, T, seqs, token ids, positions, per slice: cached, new, prompt,
// sample, table length, table]. The receiving side keeps the block tables alive in `tables`.
void encode_batch(const Batch& b, std::vector<int>* out) {
  out->insert(out->end(), {b.block_size, b.num_tokens(), static_cast<int>(b.seqs.size())});
  out->insert(out->end(), b.token_ids.begin(), b.token_ids.end());
  out->insert(out->end(), b.positions.begin(), b.positions.end());
  for (const SeqSlice& s : b.seqs) {
    out->insert(out->end(),
                {s.num_cached, s.num_new, s.num_prompt, s.sample ? 1 : 0, static_cast<int>(s.block_table.size())});
    out->insert(out->end(), s.block_table.begin(), s.block_table.end());
  }
}

Batch decode_batch(const std::vector<int>& v, size_t at, std::vector<std::vector<int>>* tables) {
  Batch b;
  b.block_size = v.at(at);
  const int T = v.at(at + 1), n = v.at(at + 2);
  at += 3;
  b.token_ids.assign(v.begin() + at, v.begin() + at + T);
  b.positions.assign(v.begin() + at + T, v.begin() + at + 2 * T);
  at += 2 * static_cast<size_t>(T);
  tables->assign(static_cast<size_t>(n), {});
  for (int i = 0; i < n; ++i) {
    SeqSlice s;
    s.seq_id = i;
    s.num_cached = v.at(at);
    s.num_new = v.at(at + 1);
    s.num_prompt = v.at(at + 2);
    s.sample = v.at(at + 3) != 0;
    const int len = v.at(at + 4);
    at += 5;
    (*tables)[i].assign(v.begin() + at, v.begin() + at + len);
    s.block_table = (*tables)[i];
    at += len;
    b.seqs.push_back(s);
  }
  return b;
}

WeightOptions weight_options(const NativeRunnerOptions& o) {
  if (!o.quantization.empty())
    throw Error("tensor parallelism with quantization '" + o.quantization + "' is not supported (weights as stored only)");
  return {};
}

// One rank's shard: its config, its slices of the weights, its decoder with the allreduce.
struct Shard {
  Shard(const std::string& dir, const NativeRunnerOptions& opts, TpRank r)
      : full(load_model_config(dir)),
        cfg(shard_config(full, r)),
        ckpt(dir),
        weights(load_weight_shard(ckpt, full, r, weight_options(opts))),
        transformer(cfg, weights, allreduce_sum) {
    if (opts.kv_cache_dtype != "bf16" && opts.kv_cache_dtype != "f32")
      throw Error("kv cache dtype '" + opts.kv_cache_dtype + "' is not supported (bf16 or f32)");
    kv_dtype = opts.kv_cache_dtype == "bf16" ? kernels::DType::BF16 : kernels::DType::F32;
    omp_set_num_threads(opts.threads > 0 ? opts.threads : omp_get_num_procs());
  }

  // The rank's logits slices, gathered on rank 0 into whole rows: [rank][rows][slice] there
  // becomes [rows][vocab]. Every rank must call it for every step.
  void gather_logits(const Logits& local, Logits* out, TpRank r) const {
    std::vector<int> counts, displs;
    for (int i = 0, at = 0; i < r.size; ++i) {
      counts.push_back(local.rows * tp_range(full.vocab_size, {i, r.size}).size());
      displs.push_back(at);
      at += counts.back();
    }
    std::vector<float> all(r.rank == 0 ? static_cast<size_t>(local.rows) * full.vocab_size : 0);
    check_mpi(MPI_Gatherv(local.data.data(), static_cast<int>(local.data.size()), MPI_FLOAT, all.data(), counts.data(),
                          displs.data(), MPI_FLOAT, 0, MPI_COMM_WORLD), "gather");
    if (r.rank != 0) return;
    out->rows = local.rows;
    out->vocab = full.vocab_size;
    out->data.resize(all.size());
    for (int i = 0; i < r.size; ++i) {
      const Range v = tp_range(full.vocab_size, {i, r.size});
      for (int row = 0; row < local.rows; ++row) {
        const float* src = all.data() + displs[i] + static_cast<size_t>(row) * v.size();
        std::copy(src, src + v.size(), out->row(row) + v.begin);
      }
    }
  }

  ModelConfig full, cfg;
  Checkpoint ckpt;
  ModelWeights weights;
  Transformer transformer;
  kernels::DType kv_dtype = kernels::DType::BF16;
  bool prefault = false;
};

class TpRunner final : public ModelRunner {
 public:
  TpRunner(const std::string& dir, const NativeRunnerOptions& opts, TpRank r) : shard_(dir, opts, r), rank_(r) {
    shard_.prefault = opts.prefault_kv_cache;
    info_ = model_info(dir, &shard_.full, shard_.ckpt.total_bytes() / r.size);
  }
  ~TpRunner() override {
    std::vector<int> stop{kStop};
    broadcast_ints(stop);
  }

  const ModelInfo& info() const override { return info_; }
  // Each rank holds its KV heads' share of every block; rank 0 sizes the pool for all.
  int64_t kv_block_bytes(int block_size) const override {
    return shard_.transformer.kv_block_bytes(block_size, shard_.kv_dtype);
  }
  // The ranks of one machine share its memory, each taking 1/size of every block: rank 0's
  // share of what is free (an underestimate when the ranks are on separate machines).
  int64_t kv_capacity_bytes() const override { return host_available_memory() / rank_.size; }
  void allocate_kv_cache(int num_blocks, int block_size) override {
    std::vector<int> cmd{kAllocate, num_blocks, block_size};
    broadcast_ints(cmd);
    shard_.transformer.allocate_kv_cache(num_blocks, block_size, shard_.kv_dtype, shard_.prefault);
  }
  void forward(const Batch& batch, Logits* out) override {
    std::vector<int> cmd{kForward};
    encode_batch(batch, &cmd);
    broadcast_ints(cmd);
    // A batch the decoder refuses is refused on every rank alike, before any collective.
    shard_.transformer.forward(batch, &local_);
    shard_.gather_logits(local_, out, rank_);
  }

 private:
  Shard shard_;
  TpRank rank_;
  ModelInfo info_;
  Logits local_;
};

// Ranks other than 0: follow rank 0's commands until it stops.
[[noreturn]] void serve_rank_zero(const std::string& dir, const NativeRunnerOptions& opts, TpRank r) {
  // mpirun passes SIGINT / SIGTERM to every rank; rank 0 drains its requests and then sends
  // the stop, which this rank must still be there to receive.
  std::signal(SIGINT, SIG_IGN);
  std::signal(SIGTERM, SIG_IGN);
  Shard shard(dir, opts, r);
  shard.prefault = opts.prefault_kv_cache;
  std::vector<int> cmd;
  std::vector<std::vector<int>> tables;
  Logits local;
  for (;;) {
    broadcast_ints(cmd);
    if (cmd.at(0) == kStop) break;
    if (cmd[0] == kAllocate) {
      shard.transformer.allocate_kv_cache(cmd.at(1), cmd.at(2), shard.kv_dtype, shard.prefault);
      continue;
    }
    const Batch batch = decode_batch(cmd, 1, &tables);
    try {
      shard.transformer.forward(batch, &local);
    } catch (const Error&) {
      continue;  // rank 0 refused the same batch and reports it
    }
    shard.gather_logits(local, nullptr, r);
  }
  std::exit(0);
}

}  // namespace

std::unique_ptr<ModelRunner> make_tp_runner(const std::string& model_dir, const NativeRunnerOptions& opts, int tp_size) {
  // One rank per process: the process default is the runner's kernel table (an unknown isa is refused).
  kernels::force_isa(kernels::Context(opts.isa.c_str()).isa_name());
  const TpRank r = init_mpi(tp_size);
  if (r.rank != 0) serve_rank_zero(model_dir, opts, r);
  return std::make_unique<TpRunner>(model_dir, opts, r);
}

}  // namespace nanovllm
