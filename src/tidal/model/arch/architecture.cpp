#include "tidal/model/arch/architecture.h"

#include <vector>

namespace tidal {

namespace {
const std::vector<ArchitectureSpec>& registry() {
  static const std::vector<ArchitectureSpec> r = {
      architecture_llama(),
      architecture_qwen2(),
      architecture_qwen3(),
  };
  return r;
}
}  // namespace

const ArchitectureSpec* find_architecture(const std::string& hf_class) {
  for (const auto& s : registry()) if (hf_class == s.hf_class) return &s;
  return nullptr;
}

const ArchitectureSpec* find_architecture_family(const std::string& family) {
  for (const auto& s : registry()) if (family == s.family) return &s;
  return nullptr;
}

std::string supported_architectures() {
  std::string out;
  for (const auto& s : registry()) {
    if (!out.empty()) out += ", ";
    out += s.hf_class;
  }
  return out;
}

}  // namespace tidal
