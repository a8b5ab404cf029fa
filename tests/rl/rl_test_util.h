// Shared helpers for tests/rl: tiny random models (model_init), the engine's F32 logprobs, and
// running the PyTorch references with Debian's /usr/bin/python3.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tidal/kernels/ops.h"
#include "tidal/model/model.h"
#include "tidal/model/model_init.h"
#include "../temp_dirs.h"

namespace tidal::rl::test {

inline std::string temp_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("tidal_rl_" + name + "_" + std::to_string(::getpid()));
  tidal::test::TempDirs::get().add(dir);  // created now, removed when the test process exits
  return dir.string();
}

// A tiny F32 model (2 layers, width 64, vocab 512, GQA 4/2).
inline std::string make_model(const std::string& family, bool tie = false, uint64_t seed = 1) {
  const std::string dir = temp_dir("model_" + family + (tie ? "_tied" : "") + "_" + std::to_string(seed));
  RandomModelSpec s;
  s.family = family;
  s.n_layers = 2;
  s.hidden = 64;
  s.intermediate = 96;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.head_dim = family == "qwen3" ? 32 : 0;  // Qwen3: explicit head_dim != hidden / heads
  s.vocab = 512;
  s.tie_embeddings = tie;
  s.dtype = DType::kF32;
  s.rope_theta = family == "llama" ? 500000.0 : 10000.0;
  s.llama3_rope_scaling = family == "llama";
  s.seed = seed;
  Status st = write_random_model(s, dir, /*overwrite=*/true);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  return dir;
}

inline std::vector<int32_t> tokens(int n, int salt, int vocab = 512) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back((i * 37 + salt * 101 + (i * i) % 13) % vocab);
  return t;
}

// The engine's forward (Model::forward, F32 KV): log p(seq[t] | seq[..t-1]) for t = 1..n-1.
inline std::vector<float> engine_logprobs(Model& m, const std::vector<int32_t>& seq) {
  const int64_t V = m.config().vocab_size;
  KvCache kv(m.config(), int64_t(seq.size()), DType::kF32);
  std::vector<float> logits, lp(static_cast<size_t>(V)), out;
  SequenceChunk chunk{kv.slots(), seq, true};
  EXPECT_TRUE(m.forward({&chunk, 1}, &logits).is_ok());
  for (size_t t = 0; t + 1 < seq.size(); ++t) {
    ops::log_softmax(logits.data() + int64_t(t) * V, lp.data(), V);
    out.push_back(lp[size_t(seq[t + 1])]);
  }
  return out;
}

// Runs `/usr/bin/python3 TIDAL_RL_TEST_DIR/<script> args...`. Returns false (after skipping or,
// with TIDAL_REQUIRE_REFERENCES set, failing the test) when python3 with torch is unavailable.
inline bool python_with_torch_available() {
  static const bool ok = std::system("/usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1") == 0;
  return ok;
}

#define TIDAL_REQUIRE_TORCH_REFERENCE()                                                         \
  do {                                                                                          \
    if (!::tidal::rl::test::python_with_torch_available()) {                                    \
      if (std::getenv("TIDAL_REQUIRE_REFERENCES")) FAIL() << "/usr/bin/python3 with torch missing"; \
      GTEST_SKIP() << "/usr/bin/python3 with torch missing (install python3-torch)";           \
    }                                                                                           \
  } while (0)

inline nlohmann::json run_reference(const std::string& script, const nlohmann::json& input, const std::string& name) {
  const std::string dir = temp_dir("ref_" + name);
  const std::string in = dir + "/input.json", out = dir + "/output.json";
  std::ofstream(in) << input.dump();
  const std::string cmd = "/usr/bin/python3 " + std::string(TIDAL_RL_TEST_DIR) + "/" + script + " " + in + " " + out;
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << cmd;
  std::ifstream f(out);
  std::stringstream ss;
  ss << f.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
  std::filesystem::remove_all(dir);
  return j;
}

}  // namespace tidal::rl::test
