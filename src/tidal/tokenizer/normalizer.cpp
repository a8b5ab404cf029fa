#include "tidal/tokenizer/normalizer.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>

#include <nlohmann/json.hpp>

namespace tidal {
namespace {

Status add_forms(const nlohmann::json& j, const std::string& field, std::vector<Normalizer::Form>& forms) {
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
      TIDAL_RETURN_IF_ERROR(add_forms(j["normalizers"][i],
                                      field + ".normalizers[" + std::to_string(i) + "]", forms));
    }
    return Status::ok();
  }
  if (type == "NFC") { forms.push_back(Normalizer::Form::kNfc); return Status::ok(); }
  if (type == "NFD") { forms.push_back(Normalizer::Form::kNfd); return Status::ok(); }
  if (type == "NFKC") { forms.push_back(Normalizer::Form::kNfkc); return Status::ok(); }
  if (type == "NFKD") { forms.push_back(Normalizer::Form::kNfkd); return Status::ok(); }
  return unimplemented(field + ".type: normalizer \"" + type + "\" is not supported yet");
}

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

Expected<Normalizer> Normalizer::from_json(const nlohmann::json& j, const std::string& field) {
  Normalizer n;
  TIDAL_RETURN_IF_ERROR(add_forms(j, field, n.forms_));
  for (Form form : n.forms_) {
    if (icu_instance(form) == nullptr) return internal_error(field + ": ICU normalizer unavailable");
  }
  return n;
}

std::string Normalizer::apply(std::string_view text) const {
  // NOTE: ASCII is invariant under all four forms; skipping ICU keeps English text fast.
  if (forms_.empty() || is_ascii(text)) return std::string(text);
  std::string current(text);
  for (Form form : forms_) {
    std::string next;
    icu::StringByteSink<std::string> sink(&next);
    UErrorCode ec = U_ZERO_ERROR;
    icu_instance(form)->normalizeUTF8(0, icu::StringPiece(current.data(), static_cast<int32_t>(current.size())),
                                      sink, nullptr, ec);
    if (U_FAILURE(ec)) return current;  // input is valid UTF-8, so this does not happen
    current = std::move(next);
  }
  return current;
}

}  // namespace tidal
