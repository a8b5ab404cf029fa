// CPU accounting for the front-end cost benchmark (docs/benchmarks.md) and /metrics: how much of
// the process's CPU time goes to the engine step versus everything else (HTTP, JSON, SSE, request
// parsing, tokenizing prompts, handing outputs to streams).
//
// Engine-step CPU = the engine thread's CPU time inside Engine::step() (EngineService measures it
// with the thread's CPU clock) + the CPU time of the kernel thread-pool workers ("tidal-pool"
// threads, which only work or spin for steps). Front-end CPU = process CPU - engine-step CPU.
// Linux only (reads /proc/self/task); elsewhere the thread sums are 0.
#pragma once

#include <string_view>

namespace tidal::server {

// User + system CPU seconds of the whole process so far.
double process_cpu_seconds();
// CPU seconds of this process's live threads whose name (comm) starts with `prefix`.
double threads_cpu_seconds(std::string_view prefix);
// CPU seconds of the calling thread.
double this_thread_cpu_seconds();

}  // namespace tidal::server
