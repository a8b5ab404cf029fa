// Shared helpers for tests/rollout: a tiny random model with the byte-level tokenizer.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "tidal/model/model_init.h"
#include "../temp_dirs.h"
#include "tidal/tokenizer/synthetic.h"
#include "tidal/tokenizer/tokenizer.h"

namespace tidal::rollout::test {

// A 2-layer, width-64 F32 model with the 259-id byte-level tokenizer (created once per process).
inline std::string tiny_model() {
  static const std::string dir = [] {
    const auto d = std::filesystem::temp_directory_path() / ("tidal_rollout_model_" + std::to_string(::getpid()));
    tidal::test::TempDirs::get().add(d);  // removed when the test process exits
    RandomModelSpec s;
    s.family = "qwen3";
    s.n_layers = 2;
    s.hidden = 64;
    s.intermediate = 128;
    s.n_heads = 4;
    s.n_kv_heads = 2;
    s.vocab = 259;
    s.dtype = DType::kF32;
    s.max_position = 256;
    s.seed = 3;
    if (!write_random_model(s, d.string(), true).is_ok()) return std::string();
    return d.string();
  }();
  return dir;
}

// The 259-id byte-level tokenizer (256 bytes + 3 special tokens) without a model folder.
inline const Tokenizer& byte_tokenizer() {
  static const Tokenizer t = [] {
    auto t = Tokenizer::from_json_text(make_synthetic_tokenizer_json(259), make_synthetic_tokenizer_config_json());
    EXPECT_TRUE(t.has_value()) << t.status().to_string();
    return std::move(t).value();
  }();
  return t;
}

}  // namespace tidal::rollout::test
