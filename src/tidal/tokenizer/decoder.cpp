#include "tidal/tokenizer/decoder.h"

#include <climits>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "tidal/tokenizer/utf8.h"

namespace tidal {
namespace {

// "<0x0A>" -> 10; -1 when `token` is not a byte token.
int byte_token_value(std::string_view token) {
  if (token.size() != 6 || token.substr(0, 3) != "<0x" || token[5] != '>') return -1;
  int v = 0;
  for (char c : token.substr(3, 2)) {
    v *= 16;
    if (c >= '0' && c <= '9') v += c - '0';
    else if (c >= 'A' && c <= 'F') v += c - 'A' + 10;
    else if (c >= 'a' && c <= 'f') v += c - 'a' + 10;
    else return -1;
  }
  return v;
}

std::string replace_all(const Regex& re, std::string_view text, const std::string& with) {
  std::vector<std::pair<size_t, size_t>> matches;
  re.find_all(text, matches);
  std::string out;
  size_t prev = 0;
  for (auto [s, e] : matches) {
    out.append(text.substr(prev, s - prev));
    out += with;
    prev = e;
  }
  out.append(text.substr(prev));
  return out;
}

std::vector<std::string> chars_of(std::string_view s) {
  std::vector<std::string> out;
  for (size_t pos = 0; pos < s.size();) {
    const size_t start = pos;
    utf8::next_code_point(s, pos);
    out.emplace_back(s.substr(start, pos - start));
  }
  return out;
}

// Strip: up to `start` leading and `stop` trailing `content` characters of `t`.
std::string strip_chars(std::string_view t, const std::string& content, size_t start, size_t stop) {
  const auto cs = chars_of(t);
  size_t b = 0, e = cs.size();
  while (b < start && b < e && cs[b] == content) ++b;
  for (size_t i = 0; i < stop && e > b && cs[e - 1] == content; ++i) --e;
  std::string s;
  for (size_t i = b; i < e; ++i) s += cs[i];
  return s;
}

}  // namespace

Status Decoder::add_steps(const nlohmann::json& j, const std::string& field, Decoder& out) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return invalid_argument(field + ": expected an object with a string \"type\"");
  }
  const std::string type = j["type"].get<std::string>();
  if (type == "Sequence") {
    if (!j.contains("decoders") || !j["decoders"].is_array()) return invalid_argument(field + ".decoders: expected an array");
    for (size_t i = 0; i < j["decoders"].size(); ++i) {
      TIDAL_RETURN_IF_ERROR(add_steps(j["decoders"][i], field + ".decoders[" + std::to_string(i) + "]", out));
    }
    return Status::ok();
  }
  if (type == "ByteLevel") {
    out.byte_level_ = true;
    return Status::ok();
  }
  Step step;
  step.kind = Kind::kFuse;
  if (type == "Replace") {
    step.kind = Kind::kReplace;
    const auto pattern = j.find("pattern");
    if (!j.contains("content") || !j["content"].is_string()) return invalid_argument(field + ".content: expected a string");
    step.text = j["content"].get<std::string>();
    const bool literal = pattern != j.end() && pattern->is_object() && pattern->contains("String");
    const bool regex = pattern != j.end() && pattern->is_object() && pattern->contains("Regex");
    if (!literal && !regex) return invalid_argument(field + ".pattern: expected {\"String\": ...} or {\"Regex\": ...}");
    const auto& p = (*pattern)[literal ? "String" : "Regex"];
    if (!p.is_string()) return invalid_argument(field + ".pattern: expected a string");
    auto re = Regex::compile(p.get<std::string>(), literal);
    if (!re) return invalid_argument(field + ".pattern: " + re.status().message());
    step.regex = std::move(re).value();
  } else if (type == "ByteFallback") {
    step.kind = Kind::kByteFallback;
  } else if (type == "Fuse") {
    step.kind = Kind::kFuse;
  } else if (type == "Strip") {
    step.kind = Kind::kStrip;
    if (!j.contains("content") || !j["content"].is_string() || chars_of(j["content"].get<std::string>()).size() != 1) {
      return invalid_argument(field + ".content: expected one character");
    }
    step.text = j["content"].get<std::string>();
    for (const char* name : {"start", "stop"}) {  // optional counts: absent = 0
      if (!j.contains(name)) continue;
      const auto& v = j[name];
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX) {
        return invalid_argument(field + "." + name + ": expected a count (an integer from 0 to 2^31 - 1)");
      }
      (std::string(name) == "start" ? step.start : step.stop) = size_t(v.get<int64_t>());
    }
  } else if (type == "Metaspace") {
    step.kind = Kind::kMetaspace;
    step.text = j.value("replacement", std::string("\xe2\x96\x81"));
    const std::string scheme = j.value("prepend_scheme", std::string(j.value("add_prefix_space", true) ? "always" : "never"));
    step.prepend = scheme != "never";
    auto re = Regex::compile(step.text, /*literal=*/true);  // for stream_token, compiled once here
    if (!re) return invalid_argument(field + ".replacement: " + re.status().message());
    step.regex = std::move(re).value();
  } else {
    return unimplemented(field + ".type: decoder \"" + type + "\" is not supported yet");
  }
  out.steps_.push_back(std::move(step));
  return Status::ok();
}

Expected<Decoder> Decoder::from_json(const nlohmann::json& j, const std::string& field) {
  Decoder d;
  if (j.is_null()) {  // tokenizers joins the tokens with spaces
    d.is_null_ = true;
    return d;
  }
  TIDAL_RETURN_IF_ERROR(add_steps(j, field, d));
  if (d.byte_level_ && !d.steps_.empty()) {
    return unimplemented(field + ": ByteLevel combined with other decoders is not supported yet");
  }
  d.plan_streaming();
  return d;
}

// Streaming applies the steps before the first Fuse to each token on its own (stream_token), and
// a Strip after the Fuse to the whole text (IncrementalDecoder). The chain streams exactly unless a
// step works across token boundaries in a way one token at a time cannot reproduce:
// ByteFallback joins runs of byte tokens before the steps after it see them, and steps after a Fuse
// other than one Strip see the whole text.
void Decoder::plan_streaming() {
  bool fused = false, byte_runs = false;
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Kind::kFuse:
        fused = true;
        break;
      case Kind::kByteFallback:
        if (fused) stream_exact_ = false;
        byte_runs = true;
        break;
      case Kind::kReplace:
      case Kind::kMetaspace:
        if (fused || byte_runs) stream_exact_ = false;
        break;
      case Kind::kStrip:
        if (!fused) {
          if (byte_runs) stream_exact_ = false;
        } else if (text_strip_.content.empty()) {
          text_strip_ = {step.text, step.start, step.stop};
        } else {
          stream_exact_ = false;
        }
        break;
    }
  }
}

std::string Decoder::decode_chain(std::vector<std::string> tokens) const {
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Kind::kReplace:
        for (std::string& t : tokens) t = replace_all(*step.regex, t, step.text);
        break;
      case Kind::kByteFallback: {
        std::vector<std::string> out;
        std::string run;
        size_t run_len = 0;
        auto flush = [&] {
          if (run_len == 0) return;
          if (utf8::is_valid(run)) {
            out.push_back(run);
          } else {
            for (size_t i = 0; i < run_len; ++i) out.emplace_back(utf8::kReplacement);
          }
          run.clear();
          run_len = 0;
        };
        for (std::string& t : tokens) {
          const int b = byte_token_value(t);
          if (b >= 0) { run += static_cast<char>(b); ++run_len; continue; }
          flush();
          out.push_back(std::move(t));
        }
        flush();
        tokens = std::move(out);
        break;
      }
      case Kind::kFuse: {
        std::string all;
        for (const std::string& t : tokens) all += t;
        tokens.assign(1, std::move(all));
        break;
      }
      case Kind::kStrip:
        for (std::string& t : tokens) t = strip_chars(t, step.text, step.start, step.stop);
        break;
      case Kind::kMetaspace:
        for (size_t i = 0; i < tokens.size(); ++i) {
          std::string s;
          for (const std::string& c : chars_of(tokens[i])) {
            if (c != step.text) s += c;
            else if (!(i == 0 && step.prepend)) s += ' ';
          }
          tokens[i] = std::move(s);
        }
        break;
    }
  }
  std::string text;
  for (size_t i = 0; i < tokens.size(); ++i) text += (is_null_ && i > 0 ? " " : "") + tokens[i];
  return text;
}

std::string Decoder::stream_token(std::string_view token, bool first) const {
  if (is_null_) return first ? std::string(token) : " " + std::string(token);  // joined with spaces
  std::string t(token);
  for (const Step& step : steps_) {
    if (step.kind == Kind::kFuse) break;  // later steps see the whole text
    switch (step.kind) {
      case Kind::kReplace:
        t = replace_all(*step.regex, t, step.text);
        break;
      case Kind::kByteFallback:
        if (const int b = byte_token_value(t); b >= 0) t = std::string(1, static_cast<char>(b));
        break;
      case Kind::kMetaspace:
        t = replace_all(*step.regex, t, first && step.prepend ? "" : " ");
        break;
      case Kind::kStrip:
        t = strip_chars(t, step.text, step.start, step.stop);
        break;
      case Kind::kFuse:
        break;
    }
  }
  return t;
}

}  // namespace tidal
