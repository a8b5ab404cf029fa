// PreTokenizer: the "pre_tokenizer" section of tokenizer.json, as a flat list of steps applied in
// order to every piece. Supported: Split (Regex or String pattern; every behavior; invert),
// ByteLevel (add_prefix_space, use_regex with the GPT-2 pattern), Metaspace (replacement,
// prepend_scheme always/first/never, split), and Sequence of those.
// Immutable after from_json(); split() is thread-safe.
#pragma once

#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tidal/core/status.h"
#include "tidal/tokenizer/regex.h"

namespace tidal {

class PreTokenizer {
 public:
  // `field` names the JSON path for error messages ("pre_tokenizer").
  static Expected<PreTokenizer> from_json(const nlohmann::json& j, const std::string& field);

  // True when a ByteLevel step is present: pieces are then handed to the model as raw bytes.
  bool has_byte_level() const { return has_byte_level_; }

  // Appends the non-empty pieces of valid UTF-8 `text` to `pieces`. A piece views `text` or a
  // string appended to `storage` (add_prefix_space, Metaspace); both must outlive `pieces`.
  // `at_start`: `text` starts at offset 0 of the input (Metaspace's prepend_scheme "first").
  void split(std::string_view text, std::vector<std::string_view>& pieces,
             std::deque<std::string>& storage, bool at_start = true) const;

 private:
  enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
  enum class Kind { kSplit, kByteLevel, kMetaspace };
  enum class Prepend { kAlways, kFirst, kNever };
  struct Step {
    Kind kind = Kind::kSplit;
    bool is_split = true;           // Split, else ByteLevel
    std::optional<Regex> regex;     // Split pattern, or GPT-2's for ByteLevel with use_regex
    Behavior behavior = Behavior::kIsolated;
    bool invert = false;
    bool add_prefix_space = false;  // ByteLevel only
    std::string replacement;        // Metaspace
    Prepend prepend = Prepend::kAlways;
    bool split = true;
  };

  static Status add_steps(const nlohmann::json& j, const std::string& field, PreTokenizer& out);
  void apply_split(const Step& step, std::string_view piece, std::vector<std::string_view>& out) const;

  std::vector<Step> steps_;
  bool has_byte_level_ = false;
};

}  // namespace tidal
