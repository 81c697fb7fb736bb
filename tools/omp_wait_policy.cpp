// How long an idle OpenMP thread spins before it sleeps, chosen for a shared machine.
//
// Every kernel is a parallel region that ends in a barrier, a few hundred per decode step. By
// default libgomp spins 300,000 `pause`s in each wait before it sleeps: ~8 ms on a Zen 5 core
// (26 ns a pause). When another process holds one of our cores, the thread that shares that
// core runs only part of the time, and whichever of our threads waits for it burns its own
// core spinning instead of letting the kernel run the late thread there: every region can
// then cost a time slice of the neighbour (bench/NOTES.md). A short spin still catches the next region of a step on a
// quiet machine (they follow each other within microseconds); after it the waiter sleeps.
//
// libgomp reads the setting once, from the environment, when it is loaded, i.e. before main()
// runs; a setenv() in main() is too late and one in .preinit_array is undone when libc starts.
// So the command sets it and executes itself again, once, when the user set neither variable.
#include "commands.h"

#include <unistd.h>

#include <cstdlib>

namespace nanovllm::tools {
namespace {

// ~26 us of `pause` on Zen 5: longer than the serial code between two kernels of a step, far
// shorter than the scheduler's time slice (bench/NOTES.md, seventh session).
constexpr const char* kSpinCount = "1000";

}  // namespace

void choose_omp_wait_policy(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;
  setenv("GOMP_SPINCOUNT", kSpinCount, 0);
  execv("/proc/self/exe", argv);  // returns only on failure: then run with libgomp's default
}

}  // namespace nanovllm::tools
