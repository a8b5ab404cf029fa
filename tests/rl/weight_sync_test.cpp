// Weight sync: after a trainer step, an engine updated in place produces exactly what a fresh
// engine loaded from the trainer's saved model produces; outputs carry the weight version; the
// bucketed writer's output does not depend on the bucket size.
#include "tidal/rl/weight_sync.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "rl_test_util.h"
#include "tidal/engine/engine.h"
#include "tidal/model/weight_store.h"

namespace tidal::rl {
namespace {

using test::tokens;

std::unique_ptr<Engine> make_engine(const std::string& dir, DType kv) {
  EngineConfig c;
  c.model_dir = dir;
  c.n_threads = 2;
  c.kv_cache_bytes = 8ull << 20;
  c.kv_dtype = kv;
  auto e = Engine::create(c);
  EXPECT_TRUE(e) << e.status().to_string();
  return e ? std::move(e).value() : nullptr;
}

struct Generation {
  std::vector<int32_t> ids;
  std::vector<float> logprobs;
  std::vector<uint64_t> versions;
};

Generation generate(Engine& e, const std::vector<int32_t>& prompt) {
  SamplingParams p;
  p.temperature = 0;
  p.max_tokens = 12;
  p.ignore_eos = true;
  p.detokenize = false;
  auto id = e.add_request(prompt, p);
  EXPECT_TRUE(id) << id.status().to_string();
  Generation g;
  while (e.has_unfinished()) {
    for (const RequestOutput& o : e.step()) {
      for (const TokenLogprob& t : o.logprobs) {
        g.ids.push_back(t.id);
        g.logprobs.push_back(t.logprob);
        g.versions.push_back(o.weight_version);
      }
    }
  }
  return g;
}

std::unique_ptr<Trainer> trained(const std::string& dir) {
  TrainerConfig c;
  c.model_dir = dir;
  c.n_threads = 2;
  c.optimizer.lr = 2e-2;
  auto t = Trainer::create(c);
  EXPECT_TRUE(t) << t.status().to_string();
  SftBatch b;
  b.sequences.push_back({tokens(16, 9), {}});
  b.sequences.push_back({tokens(12, 8), {}});
  EXPECT_TRUE((*t)->sft_step(b));
  return std::move(t).value();
}

class WeightSyncTest : public ::testing::TestWithParam<DType> {};

TEST_P(WeightSyncTest, UpdatedEngineEqualsFreshEngine) {
  const DType dtype = GetParam();
  const std::string dir = test::make_model("qwen3");
  const std::vector<int32_t> prompt = tokens(9, 3);
  auto engine = make_engine(dir, dtype);
  ASSERT_TRUE(engine);
  const Generation before = generate(*engine, prompt);
  EXPECT_EQ(before.versions.front(), 0u);

  auto trainer = trained(dir);
  WeightSyncOptions o;
  o.dtype = dtype;
  o.bucket_bytes = dtype == DType::kF32 ? 4096 : 0;  // many buckets / converted in place
  auto r = sync_engine(*trainer, *engine, 7, o);
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(r->bytes, trainer->n_parameters() * dtype_size(dtype));
  EXPECT_FALSE(std::filesystem::exists(r->path));  // unlinked once mapped
  EXPECT_EQ(engine->weight_version(), 7u);
  const Generation updated = generate(*engine, prompt);

  const std::string saved = test::temp_dir(std::string("sync_fresh_") + dtype_name(dtype));
  ASSERT_TRUE(trainer->save_model(saved, dtype).is_ok());
  auto fresh = make_engine(saved, dtype);
  ASSERT_TRUE(fresh);
  const Generation want = generate(*fresh, prompt);
  EXPECT_EQ(updated.ids, want.ids);
  EXPECT_EQ(updated.logprobs, want.logprobs);  // bitwise
  EXPECT_NE(updated.logprobs, before.logprobs);  // the update really changed the model
  for (uint64_t v : updated.versions) EXPECT_EQ(v, 7u);
}

// A WeightSync reuses two segments alternately: after each of several steps the engine still
// equals a fresh engine on the trainer's weights.
TEST(WeightSync, ReusedSegmentsStayExact) {
  const std::string dir = test::make_model("llama", /*tie=*/true);
  const std::vector<int32_t> prompt = tokens(7, 5);
  auto engine = make_engine(dir, DType::kBF16);
  auto trainer = trained(dir);
  ASSERT_TRUE(engine && trainer);
  WeightSync sync;  // BF16, in place, reused
  std::string first_path;
  for (uint64_t version = 1; version <= 3; ++version) {
    SftBatch b;
    b.sequences.push_back({tokens(10, int(version)), {}});
    ASSERT_TRUE(trainer->sft_step(b));
    auto r = sync.to_engine(*trainer, *engine, version);
    ASSERT_TRUE(r) << r.status().to_string();
    if (version == 1) first_path = r->path;
    EXPECT_EQ(r->path == first_path, version != 2);  // A, B, A
    const std::string saved = test::temp_dir("reuse_fresh_" + std::to_string(version));
    ASSERT_TRUE(trainer->save_model(saved, DType::kBF16).is_ok());
    auto fresh = make_engine(saved, DType::kBF16);
    const Generation got = generate(*engine, prompt), want = generate(*fresh, prompt);
    EXPECT_EQ(got.ids, want.ids) << "version " << version;
    EXPECT_EQ(got.logprobs, want.logprobs) << "version " << version;
    EXPECT_EQ(got.versions.back(), version);
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, WeightSyncTest, ::testing::Values(DType::kF32, DType::kBF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(WeightSync, BucketSizeDoesNotChangeTheFile) {
  const std::string dir = test::make_model("qwen2", true);
  TrainerConfig c;
  c.model_dir = dir;
  auto t = Trainer::create(c);
  ASSERT_TRUE(t);
  const std::string out = test::temp_dir("buckets");
  const auto params = (*t)->parameters();
  ASSERT_TRUE(write_weights_file(params, out + "/small.safetensors", DType::kBF16, 4096).is_ok());
  ASSERT_TRUE(write_weights_file(params, out + "/large.safetensors", DType::kBF16, 1ull << 30).is_ok());
  ASSERT_TRUE(write_weights_file(params, out + "/mapped.safetensors", DType::kBF16, 0).is_ok());
  EXPECT_EQ(slurp(out + "/small.safetensors"), slurp(out + "/large.safetensors"));
  EXPECT_EQ(slurp(out + "/small.safetensors"), slurp(out + "/mapped.safetensors"));
  auto store = WeightStore::open(out + "/small.safetensors");
  ASSERT_TRUE(store) << store.status().to_string();
  EXPECT_EQ(store->n_tensors(), params.size());
  EXPECT_FALSE(store->contains("lm_head.weight"));  // tied: stored once, as HF does
  auto emb = store->get("model.embed_tokens.weight", params[0].shape);
  ASSERT_TRUE(emb);
  const uint16_t* bf = static_cast<const uint16_t*>(emb->data);
  for (int64_t i = 0; i < params[0].numel; i += 97) EXPECT_EQ(bf[i], f32_to_bf16(params[0].data[i]));
  EXPECT_FALSE(write_weights_file(params, out + "/x.safetensors", DType::kI32, 4096).is_ok());
  EXPECT_FALSE(write_weights_file(params, out + "/x.safetensors", DType::kBF16, 100).is_ok());
  EXPECT_FALSE(std::filesystem::exists(out + "/x.safetensors"));
}

}  // namespace
}  // namespace tidal::rl
