#include "tidal/engine/text_stream.h"

#include <gtest/gtest.h>

#include "tidal/tokenizer/synthetic.h"

namespace tidal {
namespace {

Tokenizer tok() {
  auto t = Tokenizer::from_json_text(make_synthetic_tokenizer_json(400));
  EXPECT_TRUE(t) << t.status().to_string();
  return std::move(t).value();
}

// Feeds text token by token and returns (all deltas joined, stopped?).
std::pair<std::string, bool> stream(const Tokenizer& t, const std::string& text, std::vector<std::string> stop) {
  TextStream ts(t, std::move(stop));
  std::string out;
  bool stopped = false;
  for (int32_t id : t.encode(text, false)) {
    stopped = ts.push(id);
    out += ts.delta();
    if (stopped) break;
  }
  if (!stopped) ts.finish();
  out += ts.delta();
  return {out, stopped};
}

TEST(TextStreamTest, NoStopReproducesTheText) {
  const Tokenizer t = tok();
  const std::string s = "The tide comes in, 42 times — ünïcödé ✓ and goes out.";
  auto [out, stopped] = stream(t, s, {});
  EXPECT_FALSE(stopped);
  EXPECT_EQ(out, s);
}

TEST(TextStreamTest, StopStringAcrossTokenBoundaries) {
  const Tokenizer t = tok();
  // Byte-level tokens split these strings at arbitrary points; the stop string must still be
  // found, excluded, and nothing after it emitted.
  for (const std::string stop : {"comes in", "s i", "n,", "✓"}) {
    auto [out, stopped] = stream(t, "The tide comes in, ✓ goes out", {stop});
    EXPECT_TRUE(stopped) << stop;
    const std::string full = "The tide comes in, ✓ goes out";
    EXPECT_EQ(out, full.substr(0, full.find(stop))) << stop;
  }
}

TEST(TextStreamTest, HoldsBackAPossibleStopPrefix) {
  const Tokenizer t = tok();
  TextStream ts(t, {"STOP"});
  std::string seen;
  for (int32_t id : t.encode("abc ST", false)) {
    ts.push(id);
    seen += ts.delta();
  }
  EXPECT_EQ(seen, "abc ");  // "ST" might begin "STOP": held back
  for (int32_t id : t.encode("x", false)) ts.push(id);
  EXPECT_EQ(ts.delta(), "STx");  // it did not: released
}

}  // namespace
}  // namespace tidal
