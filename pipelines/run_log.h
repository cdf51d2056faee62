#pragma once

#include <fstream>
#include <mutex>
#include <string>

namespace pretext::pipelines {

/// Lines for a person: printed to stderr and, once a run directory exists, appended to its
/// run.log with a timestamp. Never given patient identifiers: callers name files by path only.
class RunLog {
 public:
  RunLog() = default;
  /// Also appends to `path` from now on.
  void open(const std::string& path);
  void info(const std::string& line);
  void warn(const std::string& line);
  /// Writes to the file only (for lines the progress display already shows).
  void file_only(const std::string& line);

 private:
  void write(const std::string& line, bool to_stderr);
  std::mutex mutex_;
  std::ofstream file_;
};

}  // namespace pretext::pipelines
