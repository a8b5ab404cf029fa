#include "tidal/tokenizer/pre_tokenizer.h"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace tidal {
namespace {

// The pattern of GPT-2's encoder.py, used by ByteLevel when use_regex is true.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

bool get_bool(const nlohmann::json& j, const char* key, bool fallback) {
  auto it = j.find(key);
  return (it != j.end() && it->is_boolean()) ? it->get<bool>() : fallback;
}

}  // namespace

Status PreTokenizer::add_steps(const nlohmann::json& j, const std::string& field, PreTokenizer& out) {
  if (j.is_null()) return Status::ok();
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return invalid_argument(field + ": expected an object with a string \"type\"");
  }
  const std::string type = j["type"].get<std::string>();
  if (type == "Sequence") {
    if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array()) {
      return invalid_argument(field + ".pretokenizers: expected an array");
    }
    for (size_t i = 0; i < j["pretokenizers"].size(); ++i) {
      TIDAL_RETURN_IF_ERROR(add_steps(j["pretokenizers"][i],
                                      field + ".pretokenizers[" + std::to_string(i) + "]", out));
    }
    return Status::ok();
  }
  Step step;
  if (type == "Metaspace") {
    step.kind = Kind::kMetaspace;
    step.is_split = false;
    step.replacement = j.value("replacement", std::string("\xe2\x96\x81"));
    std::string scheme = j.value("prepend_scheme", std::string(get_bool(j, "add_prefix_space", true) ? "always" : "never"));
    if (scheme == "always") step.prepend = Prepend::kAlways;
    else if (scheme == "first") step.prepend = Prepend::kFirst;
    else if (scheme == "never") step.prepend = Prepend::kNever;
    else return invalid_argument(field + ".prepend_scheme: unknown value \"" + scheme + "\"");
    step.split = get_bool(j, "split", true);
    out.steps_.push_back(std::move(step));
    return Status::ok();
  }
  if (type == "ByteLevel") {
    step.kind = Kind::kByteLevel;
    step.is_split = false;
    step.add_prefix_space = get_bool(j, "add_prefix_space", true);
    if (get_bool(j, "use_regex", true)) {
      TIDAL_ASSIGN_OR_RETURN(Regex re, Regex::compile(kGpt2Pattern));
      step.regex = std::move(re);
    }
    out.has_byte_level_ = true;
    out.steps_.push_back(std::move(step));
    return Status::ok();
  }
  if (type == "Split") {
    const auto pattern = j.find("pattern");
    if (pattern == j.end() || !pattern->is_object()) {
      return invalid_argument(field + ".pattern: expected {\"Regex\": ...} or {\"String\": ...}");
    }
    if (pattern->contains("Regex") && (*pattern)["Regex"].is_string()) {
      auto re = Regex::compile((*pattern)["Regex"].get<std::string>());
      if (!re) return invalid_argument(field + ".pattern.Regex: " + re.status().message());
      step.regex = std::move(re).value();
    } else if (pattern->contains("String") && (*pattern)["String"].is_string()) {
      TIDAL_ASSIGN_OR_RETURN(Regex re, Regex::compile((*pattern)["String"].get<std::string>(), true));
      step.regex = std::move(re);
    } else {
      return invalid_argument(field + ".pattern: expected {\"Regex\": ...} or {\"String\": ...}");
    }
    const std::string behavior = j.value("behavior", std::string("Isolated"));
    if (behavior == "Removed") step.behavior = Behavior::kRemoved;
    else if (behavior == "Isolated") step.behavior = Behavior::kIsolated;
    else if (behavior == "MergedWithPrevious") step.behavior = Behavior::kMergedWithPrevious;
    else if (behavior == "MergedWithNext") step.behavior = Behavior::kMergedWithNext;
    else if (behavior == "Contiguous") step.behavior = Behavior::kContiguous;
    else return invalid_argument(field + ".behavior: unknown value \"" + behavior + "\"");
    step.invert = get_bool(j, "invert", false);
    out.steps_.push_back(std::move(step));
    return Status::ok();
  }
  return unimplemented(field + ".type: pre-tokenizer \"" + type + "\" is not supported yet");
}

Expected<PreTokenizer> PreTokenizer::from_json(const nlohmann::json& j, const std::string& field) {
  PreTokenizer p;
  TIDAL_RETURN_IF_ERROR(add_steps(j, field, p));
  return p;
}

// Mirrors tokenizers' NormalizedString::split: the matches and the gaps between them cover the
// piece; `invert` swaps their roles; the behavior decides how they become pieces.
void PreTokenizer::apply_split(const Step& step, std::string_view piece,
                               std::vector<std::string_view>& out) const {
  std::vector<std::pair<size_t, size_t>> matches;
  step.regex->find_all(piece, matches);
  struct Segment { size_t start, end; bool is_match; };
  std::vector<Segment> segments;
  segments.reserve(matches.size() * 2 + 1);
  size_t prev = 0;
  for (auto [start, end] : matches) {
    if (start != prev) segments.push_back({prev, start, step.invert});
    segments.push_back({start, end, !step.invert});
    prev = end;
  }
  if (prev != piece.size()) segments.push_back({prev, piece.size(), step.invert});

  std::vector<std::pair<size_t, size_t>> kept;
  kept.reserve(segments.size());
  bool previous_match = false;
  switch (step.behavior) {
    case Behavior::kRemoved:
      for (const Segment& s : segments) {
        if (!s.is_match) kept.emplace_back(s.start, s.end);
      }
      break;
    case Behavior::kIsolated:
      for (const Segment& s : segments) kept.emplace_back(s.start, s.end);
      break;
    case Behavior::kMergedWithPrevious:
      for (const Segment& s : segments) {
        if (s.is_match && !previous_match && !kept.empty()) kept.back().second = s.end;
        else kept.emplace_back(s.start, s.end);
        previous_match = s.is_match;
      }
      break;
    case Behavior::kMergedWithNext:
      for (auto it = segments.rbegin(); it != segments.rend(); ++it) {
        if (it->is_match && !previous_match && !kept.empty()) kept.back().first = it->start;
        else kept.emplace_back(it->start, it->end);
        previous_match = it->is_match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
    case Behavior::kContiguous:
      for (const Segment& s : segments) {
        if (s.is_match == previous_match && !kept.empty()) kept.back().second = s.end;
        else kept.emplace_back(s.start, s.end);
        previous_match = s.is_match;
      }
      break;
  }
  for (auto [start, end] : kept) {
    if (end > start) out.push_back(piece.substr(start, end - start));
  }
}

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& pieces,
                         std::deque<std::string>& storage, bool at_start) const {
  if (text.empty()) return;
  std::vector<std::string_view> current{text};
  std::vector<std::string_view> next;
  for (const Step& step : steps_) {
    next.clear();
    for (size_t k = 0; k < current.size(); ++k) {
      std::string_view piece = current[k];
      if (step.kind == Kind::kMetaspace) {
        // tokenizers' Metaspace: ' ' -> replacement, prepend (always, or "first": only for the
        // piece at offset 0 of the input), then split before each replacement (MergedWithNext).
        std::string s;
        for (char c : piece) {
          if (c == ' ') s += step.replacement;
          else s += c;
        }
        const bool first = at_start && k == 0;
        if (s.compare(0, step.replacement.size(), step.replacement) != 0 &&
            (step.prepend == Prepend::kAlways || (step.prepend == Prepend::kFirst && first))) {
          s.insert(0, step.replacement);
        }
        storage.push_back(std::move(s));
        const std::string_view t = storage.back();
        if (!step.split) { next.push_back(t); continue; }
        size_t start = 0, search = 0;
        for (size_t hit; (hit = t.find(step.replacement, search)) != std::string_view::npos;) {
          if (hit > start) { next.push_back(t.substr(start, hit - start)); start = hit; }
          search = hit + step.replacement.size();
        }
        if (start < t.size()) next.push_back(t.substr(start));
        continue;
      }
      if (!step.is_split && step.add_prefix_space && piece.front() != ' ') {
        storage.push_back(" " + std::string(piece));
        piece = storage.back();
      }
      if (step.regex) apply_split(step, piece, next);
      else next.push_back(piece);
    }
    current.swap(next);
  }
  pieces.insert(pieces.end(), current.begin(), current.end());
}

}  // namespace tidal
