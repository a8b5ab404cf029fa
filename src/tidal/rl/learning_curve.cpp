#include "tidal/rl/learning_curve.h"

#include <algorithm>
#include <cstdio>
#include <limits>

namespace tidal::rl {
namespace {

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else o += c;
  }
  return o;
}

}  // namespace

std::string render_learning_curve(const std::string& title, const std::string& x_label,
                                  const std::vector<CurveSeries>& series) {
  const double W = 720, H = 420, L = 60, R = 170, T = 40, B = 50;
  double x0 = std::numeric_limits<double>::max(), x1 = std::numeric_limits<double>::lowest();
  for (const auto& s : series)
    for (const auto& [x, y] : s.points) x0 = std::min(x0, x), x1 = std::max(x1, x);
  if (x0 > x1) x0 = 0, x1 = 1;
  if (x1 == x0) x1 = x0 + 1;
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return T + (1 - std::clamp(y, 0.0, 1.0)) * (H - T - B); };
  std::string o = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fmt("%.0f", W) + "\" height=\"" +
                  fmt("%.0f", H) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  o += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  o += "<text x=\"" + fmt("%.0f", L) + "\" y=\"24\" font-size=\"15\">" + escape(title) + "</text>\n";
  for (int i = 0; i <= 10; ++i) {  // y grid
    const double y = i / 10.0;
    o += "<line x1=\"" + fmt("%.1f", L) + "\" x2=\"" + fmt("%.1f", W - R) + "\" y1=\"" + fmt("%.1f", py(y)) +
         "\" y2=\"" + fmt("%.1f", py(y)) + "\" stroke=\"" + (i % 5 ? "#eee" : "#ccc") + "\"/>\n";
    if (i % 2 == 0)
      o += "<text x=\"" + fmt("%.1f", L - 8) + "\" y=\"" + fmt("%.1f", py(y) + 4) + "\" text-anchor=\"end\">" +
           fmt("%.1f", y) + "</text>\n";
  }
  for (int i = 0; i <= 5; ++i) {  // x ticks
    const double x = x0 + (x1 - x0) * i / 5.0;
    o += "<text x=\"" + fmt("%.1f", px(x)) + "\" y=\"" + fmt("%.1f", H - B + 18) + "\" text-anchor=\"middle\">" +
         fmt("%.0f", x) + "</text>\n";
  }
  o += "<text x=\"" + fmt("%.1f", (L + W - R) / 2) + "\" y=\"" + fmt("%.1f", H - 12) + "\" text-anchor=\"middle\">" +
       escape(x_label) + "</text>\n";
  o += "<rect x=\"" + fmt("%.1f", L) + "\" y=\"" + fmt("%.1f", T) + "\" width=\"" + fmt("%.1f", W - L - R) +
       "\" height=\"" + fmt("%.1f", H - T - B) + "\" fill=\"none\" stroke=\"#888\"/>\n";
  int row = 0;
  for (const auto& s : series) {
    if (!s.points.empty()) {
      std::string pts;
      for (const auto& [x, y] : s.points) pts += fmt("%.1f", px(x)) + "," + fmt("%.1f", py(y)) + " ";
      o += "<polyline fill=\"none\" stroke=\"" + s.color + "\" stroke-width=\"1.6\" points=\"" + pts + "\"/>\n";
      if (s.markers)
        for (const auto& [x, y] : s.points)
          o += "<circle cx=\"" + fmt("%.1f", px(x)) + "\" cy=\"" + fmt("%.1f", py(y)) + "\" r=\"3\" fill=\"" +
               s.color + "\"/>\n";
    }
    const double ly = T + 14 + row++ * 20;
    o += "<line x1=\"" + fmt("%.1f", W - R + 12) + "\" x2=\"" + fmt("%.1f", W - R + 32) + "\" y1=\"" +
         fmt("%.1f", ly - 4) + "\" y2=\"" + fmt("%.1f", ly - 4) + "\" stroke=\"" + s.color +
         "\" stroke-width=\"2\"/>\n";
    o += "<text x=\"" + fmt("%.1f", W - R + 38) + "\" y=\"" + fmt("%.1f", ly) + "\">" + escape(s.name) + "</text>\n";
  }
  o += "</svg>\n";
  return o;
}

}  // namespace tidal::rl
