// Forward-pass properties that must hold exactly (bit for bit): incremental decoding equals
// scoring the whole sequence, a sequence's logits do not depend on the batch it runs in, and
// malformed inputs are rejected before any cache is touched. (Numerical agreement with an
// independent implementation is tested in tests/reference.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include "tidal/kernels/ops.h"
#include "tidal/model/model.h"
#include "tidal/model/model_init.h"

namespace tidal {
namespace {

std::string make_model(const std::string& family, DType dt) {
  const auto dir = std::filesystem::temp_directory_path() / ("tidal_forward_" + family + "_" + dtype_name(dt));
  RandomModelSpec s;
  s.family = family;
  s.n_layers = 2;
  s.hidden = 64;
  s.intermediate = 96;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.vocab = 512;
  s.dtype = dt;
  EXPECT_TRUE(write_random_model(s, dir.string(), /*overwrite=*/true).is_ok());
  return dir.string();
}

std::vector<int32_t> tokens(int n, int salt) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back((i * 37 + salt * 11) % 512);
  return t;
}

class ForwardTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ForwardTest, IncrementalEqualsFullSequence) {
  auto m = Model::load(make_model(GetParam(), DType::kBF16), {.n_threads = 2, .quantization = {}});
  ASSERT_TRUE(m) << m.status().to_string();
  const int64_t V = (*m)->config().vocab_size;
  auto ids = tokens(20, 1);
  for (DType kv_dtype : {DType::kF32, DType::kF8E4M3}) {
  SCOPED_TRACE(dtype_name(kv_dtype));
  KvCache full((*m)->config(), 20, kv_dtype);
  std::vector<float> all;
  ASSERT_TRUE((*m)->forward(std::vector<SequenceChunk>{{full.slots(), ids, true}}, &all).is_ok());

  KvCache inc((*m)->config(), 20, kv_dtype);
  std::vector<float> step;
  // A prefill chunk of 7 tokens, then one token at a time.
  ASSERT_TRUE((*m)->forward(std::vector<SequenceChunk>{{inc.slots(), std::span(ids).first(7), false}}, &step).is_ok());
  inc.advance(7);
  EXPECT_EQ(std::memcmp(step.data(), all.data() + 6 * V, size_t(V) * 4), 0);
  for (size_t i = 7; i < ids.size(); ++i) {
    ASSERT_TRUE((*m)->forward(std::vector<SequenceChunk>{{inc.slots(), std::span(ids).subspan(i, 1), false}}, &step).is_ok());
    inc.advance(1);
    ASSERT_EQ(std::memcmp(step.data(), all.data() + int64_t(i) * V, size_t(V) * 4), 0) << "position " << i;
  }
  EXPECT_EQ(inc.n_tokens(), 20);
  }
}

TEST_P(ForwardTest, BatchInvariant) {
  auto m = Model::load(make_model(GetParam(), DType::kF32), {.n_threads = 2, .quantization = {}});
  ASSERT_TRUE(m) << m.status().to_string();
  const ModelConfig& c = (*m)->config();
  const int64_t V = c.vocab_size;
  auto a = tokens(9, 2), b = tokens(5, 3), d = tokens(1, 4);
  auto alone = [&](const std::vector<int32_t>& t) {
    KvCache kv(c, 16);
    std::vector<float> out;
    EXPECT_TRUE((*m)->forward(std::vector<SequenceChunk>{{kv.slots(), t, true}}, &out).is_ok());
    return out;
  };
  auto la = alone(a), lb = alone(b), ld = alone(d);
  KvCache ka(c, 16), kb(c, 16), kd(c, 16);
  std::vector<float> out;
  ASSERT_TRUE((*m)->forward(std::vector<SequenceChunk>{{ka.slots(), a, true}, {kb.slots(), b, true}, {kd.slots(), d, true}}, &out).is_ok());
  ASSERT_EQ(out.size(), size_t((9 + 5 + 1) * V));
  EXPECT_EQ(std::memcmp(out.data(), la.data(), la.size() * 4), 0);
  EXPECT_EQ(std::memcmp(out.data() + 9 * V, lb.data(), lb.size() * 4), 0);
  EXPECT_EQ(std::memcmp(out.data() + 14 * V, ld.data(), ld.size() * 4), 0);
}

// A decode step with many sequences hands each token out whole (all heads in one work item); a
// lone sequence's step splits its heads over the threads. Both must give the same bits, for F32
// and FP8 KV, with sequences of different lengths (GQA: 4 query heads over 2 kv heads).
TEST_P(ForwardTest, ManyDecodeTokensMatchEachDecodedAlone) {
  auto m = Model::load(make_model(GetParam(), DType::kF32), {.n_threads = 2, .quantization = {}});
  ASSERT_TRUE(m) << m.status().to_string();
  const ModelConfig& c = (*m)->config();
  const int64_t V = c.vocab_size;
  constexpr int kSeqs = 12;  // >= 4 x threads: whole-token items
  for (DType kv_dtype : {DType::kF32, DType::kF8E4M3}) {
    SCOPED_TRACE(dtype_name(kv_dtype));
    std::vector<std::unique_ptr<KvCache>> batched, alone;
    std::vector<std::vector<int32_t>> prompts;
    std::vector<float> out;
    for (int i = 0; i < kSeqs; ++i) {
      prompts.push_back(tokens(3 + 5 * i, 20 + i));  // 3 .. 58 positions: up to 4 KV blocks of 16
      for (auto* caches : {&batched, &alone}) {
        caches->push_back(std::make_unique<KvCache>(c, 64, kv_dtype));
        KvCache& kv = *caches->back();
        ASSERT_TRUE((*m)->forward(std::vector<SequenceChunk>{{kv.slots(), prompts.back(), false}}, &out).is_ok());
        kv.advance(int64_t(prompts.back().size()));
      }
    }
    std::vector<int32_t> next(kSeqs);
    std::vector<SequenceChunk> step;
    for (int i = 0; i < kSeqs; ++i) {
      next[size_t(i)] = (7 * i + 3) % 512;
      step.push_back({batched[size_t(i)]->slots(), std::span(next).subspan(size_t(i), 1), false});
    }
    std::vector<float> all;
    ASSERT_TRUE((*m)->forward(step, &all).is_ok());
    ASSERT_EQ(all.size(), size_t(kSeqs * V));
    for (int i = 0; i < kSeqs; ++i) {
      std::vector<float> one;
      ASSERT_TRUE((*m)->forward(std::vector<SequenceChunk>{{alone[size_t(i)]->slots(), std::span(next).subspan(size_t(i), 1), false}}, &one).is_ok());
      EXPECT_EQ(std::memcmp(all.data() + int64_t(i) * V, one.data(), size_t(V) * 4), 0) << "sequence " << i;
    }
  }
}

TEST_P(ForwardTest, RejectsBadInputWithoutTouchingCaches) {
  auto m = Model::load(make_model(GetParam(), DType::kF16), {.n_threads = 1, .quantization = {}});
  ASSERT_TRUE(m) << m.status().to_string();
  const ModelConfig& c = (*m)->config();
  KvCache ok(c, 4), small(c, 2);
  std::vector<int32_t> good = {1, 2, 3}, bad = {1, 512};
  std::vector<float> out;
  Status s = (*m)->forward(std::vector<SequenceChunk>{{ok.slots(), good, false}, {small.slots(), good, false}}, &out);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  s = (*m)->forward(std::vector<SequenceChunk>{{ok.slots(), bad, false}}, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("token id 512"), std::string::npos);
  EXPECT_EQ(ok.n_tokens(), 0);
  EXPECT_EQ(small.n_tokens(), 0);
}

TEST_P(ForwardTest, PagedBlocksEqualContiguous) {
  auto m = Model::load(make_model(GetParam(), DType::kBF16), {.n_threads = 2, .quantization = {}});
  ASSERT_TRUE(m) << m.status().to_string();
  const ModelConfig& c = (*m)->config();
  const int64_t V = c.vocab_size;
  auto ids = tokens(19, 5);
  for (DType kv_dtype : {DType::kF32, DType::kBF16, DType::kF16, DType::kF8E4M3}) {
    KvCache contiguous(c, 19, kv_dtype);
    std::vector<float> want, got, step;
    ASSERT_TRUE((*m)->forward(std::vector<SequenceChunk>{{contiguous.slots(), ids, true}}, &want).is_ok());
    // Block size 4, blocks scattered and out of order; prefill 6 tokens, then 13 more in chunks.
    PagedKvStorage storage(c, 10, 4, kv_dtype);
    const std::vector<int32_t> table = {7, 2, 9, 0, 5};
    int64_t past = 0;
    for (int64_t n : {6, 1, 5, 7}) {
      KvSlots slots{&storage, table, past};
      ASSERT_TRUE((*m)->forward(std::vector<SequenceChunk>{{slots, std::span(ids).subspan(size_t(past), size_t(n)), true}},
                                &step).is_ok());
      got.insert(got.end(), step.begin(), step.end());
      past += n;
    }
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size() * 4), 0) << dtype_name(kv_dtype);
    if (kv_dtype == DType::kF32) continue;
    // 16-bit and FP8 KV stay close to F32 KV (rounding of K and V only). Log-probabilities over
    // the whole vocabulary vs F32 KV, measured on these random models (very sensitive to noise):
    // BF16 max |dlogp| 0.03-0.05, mean 0.006-0.008; F16 ~0.005 / ~0.001; FP8 E4M3 0.5-0.8 /
    // 0.08-0.10, ~16x BF16's as its 3 mantissa bits (vs 7) predict. Bounds: ~2x those.
    KvCache f32(c, 19, DType::kF32);
    std::vector<float> ref;
    ASSERT_TRUE((*m)->forward(std::vector<SequenceChunk>{{f32.slots(), ids, true}}, &ref).is_ok());
    double max_diff = 0;
    for (size_t i = 0; i < ref.size(); ++i) max_diff = std::max(max_diff, double(std::fabs(ref[i] - want[i])));
    if (kv_dtype != DType::kF8E4M3) {
      EXPECT_LT(max_diff, 0.1) << dtype_name(kv_dtype);
    }
    EXPECT_GT(max_diff, 0.0) << dtype_name(kv_dtype) << " KV should round something";
    {
      std::vector<float> lr(static_cast<size_t>(V)), lq(lr);
      double max_dlp = 0, sum_dlp = 0;
      for (int64_t t = 0; t < 19; ++t) {
        ops::log_softmax(ref.data() + t * V, lr.data(), V);
        ops::log_softmax(want.data() + t * V, lq.data(), V);
        for (int64_t v = 0; v < V; ++v) {
          const double d = std::fabs(double(lr[size_t(v)]) - lq[size_t(v)]);
          max_dlp = std::max(max_dlp, d);
          sum_dlp += d;
        }
      }
      std::printf("%s KV vs f32 KV (%s): max |dlogp| %.3g, mean %.3g\n", dtype_name(kv_dtype), GetParam().c_str(), max_dlp, sum_dlp / double(19 * V));
      const bool fp8 = kv_dtype == DType::kF8E4M3;
      EXPECT_LT(max_dlp, fp8 ? 1.5 : 0.1) << dtype_name(kv_dtype);
      EXPECT_LT(sum_dlp / double(19 * V), fp8 ? 0.2 : 0.015) << dtype_name(kv_dtype);
    }
  }
}

TEST(ForwardKvTest, RejectsKvStorageOfAnUnsupportedType) {
  auto m = Model::load(make_model("llama", DType::kBF16), {.n_threads = 1, .quantization = {}});
  ASSERT_TRUE(m) << m.status().to_string();
  PagedKvStorage st((*m)->config(), 1, 8, DType::kF8E5M2);
  const std::vector<int32_t> table = {0};
  std::vector<int32_t> ids = {1, 2};
  std::vector<float> out;
  Status s = (*m)->forward(std::vector<SequenceChunk>{{KvSlots{&st, table, 0}, ids, false}}, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("F8_E5M2"), std::string::npos) << s.message();
}

INSTANTIATE_TEST_SUITE_P(Families, ForwardTest, ::testing::Values("llama", "qwen2", "qwen3"));

TEST(ModelLoadTest, ErrorsNameTheTensorAndFile) {
  const std::string dir = make_model("llama", DType::kF32);
  // A config whose hidden size disagrees with the weights.
  const std::string cfg = dir + "/config.json";
  std::string text;
  {
    std::ifstream in(cfg);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::string bad_dir = dir + "_badshape";
  std::filesystem::create_directories(bad_dir);
  std::filesystem::copy_file(dir + "/model.safetensors", bad_dir + "/model.safetensors",
                             std::filesystem::copy_options::overwrite_existing);
  std::string changed = text;
  changed.replace(changed.find("\"intermediate_size\": 96"), 23, "\"intermediate_size\": 80");
  {
    std::ofstream out(bad_dir + "/config.json");
    out << changed;
  }
  auto m = Model::load(bad_dir);
  ASSERT_FALSE(m);
  EXPECT_NE(m.status().message().find("model.layers.0.mlp.gate_proj.weight' has shape [96, 64], the config implies [80, 64]"),
            std::string::npos)
      << m.status().message();
  // No weights at all.
  std::filesystem::remove(bad_dir + "/model.safetensors");
  m = Model::load(bad_dir);
  ASSERT_FALSE(m);
  EXPECT_NE(m.status().message().find("no model.safetensors"), std::string::npos);
}

}  // namespace
}  // namespace tidal
