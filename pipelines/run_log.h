#pragma once

#include <cstdint>
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
  /// A command that failed: "error: " + `line`, to the file only (main prints it).
  void error(const std::string& line);
  /// This process is rank `rank` (> 0) of a data-parallel job: from now on only its warnings and
  /// errors are written, prefixed "rank N: ", as rank 0 reports the rest.
  void follow_as_rank(int64_t rank);

 private:
  void write(const std::string& line, bool to_stderr);
  std::mutex mutex_;
  std::string rank_prefix_;  // "rank N: " on ranks other than 0
  std::ofstream file_;
};

}  // namespace pretext::pipelines
