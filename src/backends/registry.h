// The backends compiled into this build, each registered by its own folder under backends/:
// a name, a one-line summary and a factory that turns the engine Config into the backend's own
// typed options and builds its runner. Adding a backend touches its folder and one line of
// src/CMakeLists.txt, never src/engine/ nor llm.cpp.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/model_runner.h"
#include "nanovllm/config.h"
#include "nanovllm/error.h"

namespace nanovllm {

struct BackendEntry {
  std::string name;     // what --backend / Config::backend selects
  std::string summary;  // one line for --help and --version
  std::function<std::unique_ptr<ModelRunner>(const std::string& model_dir, const Config& config)> make;
};

// Copies Config::backend_options into the backend's typed fields (`known`: key -> field) and
// refuses a key the backend does not have, naming it and the keys it has.
inline void read_backend_options(const Config& config, const std::string& backend,
                                 const std::map<std::string, std::string*>& known) {
  for (const auto& [key, value] : config.backend_options) {
    auto it = known.find(key);
    if (it != known.end()) {
      *it->second = value;
      continue;
    }
    std::string have;
    for (const auto& k : known) have += (have.empty() ? "" : ", ") + k.first;
    throw Error("backend " + backend + " has no option '" + key + "' (it has: " + have + ")");
  }
}

// In the order src/CMakeLists.txt lists them (native first).
const std::vector<BackendEntry>& backend_registry();

// The entry named `name`; throws Error naming the backends this build has otherwise.
const BackendEntry& find_backend(const std::string& name);

}  // namespace nanovllm
