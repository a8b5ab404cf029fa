// A self-contained SVG learning curve (no plotting library): series of (x, y) with y in [0, 1].
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace tidal::rl {

struct CurveSeries {
  std::string name;
  std::string color;  // CSS colour
  std::vector<std::pair<double, double>> points;
  bool markers = false;  // draw points (sparse series such as evaluations)
};

// An SVG document: x from the smallest to the largest x of all series, y in [0, 1], a legend.
std::string render_learning_curve(const std::string& title, const std::string& x_label,
                                  const std::vector<CurveSeries>& series);

}  // namespace tidal::rl
