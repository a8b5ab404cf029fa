// Shared by the sandboxed Python tasks (arith-python, tool-use): how model text becomes a program,
// and how its output is read back. Internal to tidal_rollout.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tidal/tokenizer/tokenizer.h"

namespace tidal::rollout::python_cell {

// A Python driver (run as the program; its input is JSON on stdin:
// {"history": [cell, ...], "cell": cell}). It replays the `history` cells silently (output
// discarded, exceptions swallowed) in one namespace, then runs `cell` there with notebook
// semantics: when the cell's last statement is an expression, its repr() is printed (unless it
// is None). An exception in `cell` prints a short traceback (cell frames only) to stderr and
// exits 1. So "6*7" prints 42, and so does "x = 6\nprint(x*7)".
extern const char* const kDriver;

// The stdin of the driver.
std::string driver_input(const std::vector<std::string>& history, const std::string& cell);

// The text of a model turn: its token ids decoded without special tokens (so the text holds a
// stop string even where the caller's text held it back), or `text` when there are no ids.
std::string turn_text(const Tokenizer& tok, const std::vector<int32_t>& ids, const std::string& text);

// The code of an answer: the content of the first ``` fenced block if there is one (an optional
// language tag after the fence is dropped), else the whole text; trimmed.
std::string strip_fences(const std::string& text);

// The last non-empty line of `out`, trimmed, read as an integer: "-12", or a float with only
// zeros after the point ("42.0"). nullopt otherwise. Returned as its canonical decimal text.
std::optional<std::string> last_integer_line(const std::string& out);

// `s` cut to at most `max_chars` bytes (the head and the tail, with a marker between).
std::string truncate_middle(const std::string& s, size_t max_chars);

// Canonical decimal text of an integer written as [-]digits (leading zeros dropped, "-0" -> "0").
// nullopt when `s` is not such an integer.
std::optional<std::string> canonical_integer(const std::string& s);

}  // namespace tidal::rollout::python_cell
