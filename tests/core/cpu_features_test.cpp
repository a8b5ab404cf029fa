#include "tidal/core/cpu_features.h"

#include <gtest/gtest.h>

namespace tidal {
namespace {

TEST(CpuFeaturesTest, LevelConsistentWithFlags) {
  const CpuFeatures& f = cpu_features();
  if (f.best == CpuIsa::kAvx512) {
    EXPECT_TRUE(f.avx512f && f.avx512bw && f.avx2 && f.fma);
  }
  if (f.best >= CpuIsa::kAvx2) {
    EXPECT_TRUE(f.avx2 && f.fma && f.f16c);
  }
  EXPECT_LE(int(cpu_isa()), int(f.best));  // TIDAL_CPU may only lower it
  EXPECT_FALSE(cpu_features_summary().empty());
}

}  // namespace
}  // namespace tidal
