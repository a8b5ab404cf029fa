#include "tidal/rollout/python_cell.h"

#include <cctype>

namespace tidal::rollout::python_cell {

const char* const kDriver = R"PY(
import ast, contextlib, io, json, linecache, sys, traceback
_req = json.loads(sys.stdin.read())
sys.stdin = io.StringIO("")
_ns = {"__name__": "__main__"}

def _run(src, show, name):
    linecache.cache[name] = (len(src), None, src.splitlines(True), name)
    tree = ast.parse(src, name, "exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, name, "exec"), _ns)
    if last is not None:
        value = eval(compile(last, name, "eval"), _ns)
        if show and value is not None:
            print(repr(value))

_sink = io.StringIO()
for _i, _src in enumerate(_req["history"]):
    with contextlib.redirect_stdout(_sink), contextlib.redirect_stderr(_sink):
        try:
            _run(_src, False, "<cell %d>" % (_i + 1))
        except BaseException:
            pass
    _sink.seek(0)
    _sink.truncate()

try:
    _run(_req["cell"], True, "<cell>")
except SystemExit:
    raise
except BaseException as e:
    tb = e.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell"):
        tb = tb.tb_next
    sys.stdout.flush()
    if tb is None:
        sys.stderr.write("".join(traceback.format_exception_only(type(e), e)))
    else:
        sys.stderr.write("".join(traceback.format_exception(type(e), e, tb)))
    sys.exit(1)
)PY";

std::string driver_input(const std::vector<std::string>& history, const std::string& cell) {
  nlohmann::json j = {{"history", history}, {"cell", cell}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string turn_text(const Tokenizer& tok, const std::vector<int32_t>& ids, const std::string& text) {
  if (ids.empty()) return text;
  return tok.decode(ids, /*skip_special_tokens=*/true);
}

namespace {

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

}  // namespace

std::string strip_fences(const std::string& text) {
  const size_t open = text.find("```");
  if (open == std::string::npos) return trim(text);
  size_t start = text.find('\n', open + 3);  // the rest of the fence line is a language tag
  if (start == std::string::npos) return "";
  ++start;
  const size_t close = text.find("```", start);
  return trim(text.substr(start, close == std::string::npos ? std::string::npos : close - start));
}

std::optional<std::string> canonical_integer(const std::string& s) {
  size_t i = 0;
  bool neg = false;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
  if (i == s.size()) return std::nullopt;
  for (size_t k = i; k < s.size(); ++k)
    if (!std::isdigit(static_cast<unsigned char>(s[k]))) return std::nullopt;
  while (i + 1 < s.size() && s[i] == '0') ++i;
  std::string digits = s.substr(i);
  if (digits == "0") return digits;
  return (neg ? "-" : "") + digits;
}

std::optional<std::string> last_integer_line(const std::string& out) {
  size_t end = out.size();
  std::string line;
  while (end > 0) {
    size_t start = out.rfind('\n', end - 1);
    start = start == std::string::npos ? 0 : start + 1;
    line = trim(out.substr(start, end - start));
    if (!line.empty()) break;
    end = start == 0 ? 0 : start - 1;
  }
  if (line.empty()) return std::nullopt;
  if (const size_t dot = line.find('.'); dot != std::string::npos) {
    const std::string frac = line.substr(dot + 1);
    if (frac.empty() || frac.find_first_not_of('0') != std::string::npos) return std::nullopt;
    line = line.substr(0, dot);
  }
  return canonical_integer(line);
}

std::string truncate_middle(const std::string& s, size_t max_chars) {
  if (s.size() <= max_chars) return s;
  const std::string marker = "\n...[truncated]...\n";
  if (max_chars <= marker.size()) return s.substr(0, max_chars);
  const size_t keep = max_chars - marker.size();
  const size_t head = keep / 2, tail = keep - head;
  return s.substr(0, head) + marker + s.substr(s.size() - tail);
}

}  // namespace tidal::rollout::python_cell
