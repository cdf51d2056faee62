#pragma once

// Helpers of the side-by-side benchmarks: the Python half (a script printing one number) and the
// memory of this process.

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

namespace pretext::bench {

/// Runs `command` and returns the number printed after `prefix` at the start of a line of its
/// output ("slices_per_s 590.4" with prefix "slices_per_s "); 0 when there is none.
inline double python_number(const std::string& command, const std::string& prefix) {
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return 0.0;
  char line[256];
  double value = 0.0;
  while (std::fgets(line, sizeof line, pipe))
    if (std::string(line).rfind(prefix, 0) == 0) value = std::atof(line + prefix.size());
  pclose(pipe);
  return value;
}

/// A memory figure of this process from /proc/self/status in MiB: "VmHWM:" (peak resident),
/// "VmRSS:" (resident now).
inline double status_mib(const char* key) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind(key, 0) == 0) return std::atof(line.c_str() + std::strlen(key)) / 1024.0;
  return 0.0;
}

}  // namespace pretext::bench
