#pragma once

// The Python half of a side-by-side benchmark: runs a script and reads the one number it prints.

#include <cstdio>
#include <cstdlib>
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

}  // namespace pretext::bench
