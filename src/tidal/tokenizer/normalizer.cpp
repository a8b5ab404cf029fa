#include "tidal/tokenizer/normalizer.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>
#include <unicode/unistr.h>

#include <nlohmann/json.hpp>

namespace tidal {
namespace {

const icu::Normalizer2* icu_instance(Normalizer::Form form) {
  UErrorCode ec = U_ZERO_ERROR;
  switch (form) {
    case Normalizer::Form::kNfc: return icu::Normalizer2::getNFCInstance(ec);
    case Normalizer::Form::kNfd: return icu::Normalizer2::getNFDInstance(ec);
    case Normalizer::Form::kNfkc: return icu::Normalizer2::getNFKCInstance(ec);
    case Normalizer::Form::kNfkd: return icu::Normalizer2::getNFKDInstance(ec);
  }
  return nullptr;
}

bool is_ascii(std::string_view text) {
  for (unsigned char c : text) {
    if (c >= 0x80) return false;
  }
  return true;
}

}  // namespace

Status Normalizer::add_steps(const nlohmann::json& j, const std::string& field, Normalizer& out) {
  if (j.is_null()) return Status::ok();
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return invalid_argument(field + ": expected an object with a string \"type\"");
  }
  const std::string type = j["type"].get<std::string>();
  if (type == "Sequence") {
    if (!j.contains("normalizers") || !j["normalizers"].is_array()) {
      return invalid_argument(field + ".normalizers: expected an array");
    }
    for (size_t i = 0; i < j["normalizers"].size(); ++i) {
      TIDAL_RETURN_IF_ERROR(add_steps(j["normalizers"][i], field + ".normalizers[" + std::to_string(i) + "]", out));
    }
    return Status::ok();
  }
  Step step;
  step.kind = Kind::kForm;
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    step.form = type == "NFC" ? Form::kNfc : type == "NFD" ? Form::kNfd : type == "NFKC" ? Form::kNfkc : Form::kNfkd;
    if (icu_instance(step.form) == nullptr) return internal_error(field + ": ICU normalizer unavailable");
  } else if (type == "Lowercase") {
    step.kind = Kind::kLowercase;
  } else if (type == "Prepend") {
    if (!j.contains("prepend") || !j["prepend"].is_string()) return invalid_argument(field + ".prepend: expected a string");
    step.kind = Kind::kPrepend;
    step.text = j["prepend"].get<std::string>();
  } else if (type == "Replace") {
    const auto pattern = j.find("pattern");
    if (!j.contains("content") || !j["content"].is_string()) return invalid_argument(field + ".content: expected a string");
    step.kind = Kind::kReplace;
    step.text = j["content"].get<std::string>();
    if (pattern != j.end() && pattern->is_object() && pattern->contains("String") && (*pattern)["String"].is_string()) {
      auto re = Regex::compile((*pattern)["String"].get<std::string>(), /*literal=*/true);
      if (!re) return invalid_argument(field + ".pattern.String: " + re.status().message());
      step.regex = std::move(re).value();
    } else if (pattern != j.end() && pattern->is_object() && pattern->contains("Regex") &&
               (*pattern)["Regex"].is_string()) {
      auto re = Regex::compile((*pattern)["Regex"].get<std::string>());
      if (!re) return invalid_argument(field + ".pattern.Regex: " + re.status().message());
      step.regex = std::move(re).value();
    } else {
      return invalid_argument(field + ".pattern: expected {\"String\": ...} or {\"Regex\": ...}");
    }
  } else {
    return unimplemented(field + ".type: normalizer \"" + type + "\" is not supported yet");
  }
  out.steps_.push_back(std::move(step));
  return Status::ok();
}

Expected<Normalizer> Normalizer::from_json(const nlohmann::json& j, const std::string& field) {
  Normalizer n;
  TIDAL_RETURN_IF_ERROR(add_steps(j, field, n));
  return n;
}

std::string Normalizer::apply(std::string_view text) const {
  std::string current(text);
  std::vector<std::pair<size_t, size_t>> matches;
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Kind::kForm: {
        // NOTE: ASCII is invariant under all four forms; skipping ICU keeps English text fast.
        if (is_ascii(current)) break;
        std::string next;
        icu::StringByteSink<std::string> sink(&next);
        UErrorCode ec = U_ZERO_ERROR;
        icu_instance(step.form)->normalizeUTF8(
            0, icu::StringPiece(current.data(), static_cast<int32_t>(current.size())), sink, nullptr, ec);
        if (U_SUCCESS(ec)) current = std::move(next);  // input is valid UTF-8: always succeeds
        break;
      }
      case Kind::kLowercase: {
        icu::UnicodeString u = icu::UnicodeString::fromUTF8(current);
        u.toLower();
        current.clear();
        u.toUTF8String(current);
        break;
      }
      case Kind::kPrepend:
        if (!current.empty()) current.insert(0, step.text);  // as tokenizers: not on empty text
        break;
      case Kind::kReplace: {
        matches.clear();
        step.regex->find_all(current, matches);
        if (matches.empty()) break;
        std::string next;
        size_t prev = 0;
        for (auto [start, end] : matches) {
          next.append(current, prev, start - prev);
          next += step.text;
          prev = end;
        }
        next.append(current, prev, std::string::npos);
        current = std::move(next);
        break;
      }
    }
  }
  return current;
}

}  // namespace tidal
