// Cost of the MPI allreduce that tensor parallelism pays twice per layer per step (after
// o_proj and after down_proj): MPI_Allreduce(SUM) in place on `n` floats, the size of a step's
// hidden states (tokens x hidden). Run under mpirun; rank 0 prints one line per size.
//   mpirun -np 2 build-mpi/bin/allreduce_bench [floats ...]
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

struct Timing {
  double median_us, p10_us, p90_us;
};

// Each call is timed on its own (not a loop average), so a slow outlier on the shared machine
// shows in p90 instead of moving the median. Ranks start each call together (barrier first),
// and the slowest rank's time counts, as a step waits for it.
Timing time_allreduce(std::vector<float>& buf, int iterations) {
  std::vector<double> us;
  for (int i = 0; i < iterations; ++i) {
    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = MPI_Wtime();
    MPI_Allreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(buf.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    double dt = (MPI_Wtime() - t0) * 1e6;
    MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    us.push_back(dt);
  }
  std::sort(us.begin(), us.end());
  auto at = [&](double q) { return us[static_cast<std::size_t>(q * static_cast<double>(us.size() - 1))]; };
  return {at(0.5), at(0.1), at(0.9)};
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  std::vector<long> sizes;
  for (int i = 1; i < argc; ++i) sizes.push_back(std::atol(argv[i]));
  if (sizes.empty()) sizes = {1024, 2048, 4096, 16384, 65536, 262144};
  if (rank == 0) std::printf("ranks floats bytes median_us p10_us p90_us\n");
  for (const long n : sizes) {
    std::vector<float> buf(static_cast<std::size_t>(n), 1.0f);
    const int iterations = n <= 16384 ? 2000 : 200;
    time_allreduce(buf, iterations / 10);  // warm-up: connections, shared-memory segments
    const Timing t = time_allreduce(buf, iterations);
    if (rank == 0) std::printf("%d %ld %ld %.1f %.1f %.1f\n", size, n, n * 4, t.median_us, t.p10_us, t.p90_us);
  }
  MPI_Finalize();
  return 0;
}
