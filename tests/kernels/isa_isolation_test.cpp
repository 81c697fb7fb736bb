// The ISA-specific objects must define no shared (weak / COMDAT) symbols: the linker keeps one
// copy of such a symbol for the whole program, and an AVX-512 copy of, say, a std::string
// member would then run on CPUs without AVX-512 and crash with SIGILL.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>

namespace {

TEST(KernelsIsaIsolation, IsaObjectsDefineNoWeakSymbols) {
  const std::string lib = std::string(NANOVLLM_BINARY_DIR) + "/src/libnanovllm_kernels.a";
  if (!std::filesystem::exists(lib)) GTEST_SKIP() << lib << " not found";
  FILE* p = popen(("nm --defined-only " + lib + " 2>/dev/null").c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string member, offenders;
  int isa_members = 0;
  char line[4096];
  while (fgets(line, sizeof line, p)) {
    std::string s(line);
    if (!s.empty() && s.back() == '\n') s.pop_back();
    if (!s.empty() && s.back() == ':') {  // "kernels_avx2.cpp.o:" starts a member
      member = s;
      isa_members += member.find("_avx") != std::string::npos;
      continue;
    }
    if (member.find("_avx") == std::string::npos || s.size() < 20) continue;
    const char kind = s[17];
    if ((kind == 'W' || kind == 'V' || kind == 'u') && s.find("DW.ref.__gxx_personality_v0") == std::string::npos)
      offenders += member + " " + s + "\n";
  }
  const int rc = pclose(p);
  if (rc != 0 || isa_members == 0) GTEST_SKIP() << "nm unavailable or no ISA objects in " << lib;
  EXPECT_EQ(offenders, "") << "weak symbols in ISA objects (use static / anonymous namespaces)";
}

}  // namespace
