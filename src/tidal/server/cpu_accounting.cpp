#include "tidal/server/cpu_accounting.h"

#include <dirent.h>
#include <sys/resource.h>
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace tidal::server {

namespace {
double seconds(const timespec& t) { return double(t.tv_sec) + double(t.tv_nsec) * 1e-9; }
}  // namespace

double process_cpu_seconds() {
  timespec t{};
  if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t) != 0) return 0;
  return seconds(t);
}

double this_thread_cpu_seconds() {
  timespec t{};
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t) != 0) return 0;
  return seconds(t);
}

double threads_cpu_seconds(std::string_view prefix) {
  double total = 0;
  DIR* dir = ::opendir("/proc/self/task");
  if (!dir) return 0;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    const std::string base = std::string("/proc/self/task/") + e->d_name;
    char comm[64] = {0};
    if (FILE* f = std::fopen((base + "/comm").c_str(), "r")) {
      if (!std::fgets(comm, sizeof(comm), f)) comm[0] = 0;
      std::fclose(f);
    }
    if (std::string_view(comm).substr(0, prefix.size()) != prefix) continue;
    // The kernel's per-thread CPU clock (nanoseconds; glibc's pthread_getcpuclockid encoding).
    const long tid = std::strtol(e->d_name, nullptr, 10);
    const clockid_t clock = clockid_t((~clockid_t(tid) << 3) | 6);  // CPUCLOCK_PERTHREAD | CPUCLOCK_SCHED
    timespec t{};
    if (clock_gettime(clock, &t) == 0) total += seconds(t);
  }
  ::closedir(dir);
  return total;
}

}  // namespace tidal::server
