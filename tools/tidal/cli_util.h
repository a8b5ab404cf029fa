// Small helpers shared by the CLI subcommands.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "command.h"
#include "tidal/core/status.h"

namespace tidal::cli {

// "1,2,3" -> {1, 2, 3}; errors name the bad element.
Expected<std::vector<int32_t>> parse_id_list(const std::string& text);

// Prints "tidal <cmd>: error: <status message>" and returns 1.
int fail(const Args& args, const Status& status);

// --threads N (0 or absent: all hardware threads).
int threads_flag(Args& args);

}  // namespace tidal::cli
