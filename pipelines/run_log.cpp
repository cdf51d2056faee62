#include "pipelines/run_log.h"

#include <chrono>
#include <ctime>
#include <iostream>

#include "base/errors.h"

namespace pretext::pipelines {

void RunLog::open(const std::string& path) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (file_.is_open()) file_.close();
  file_.clear();
  file_.open(path, std::ios::app);
  if (!file_) throw InputError(path + ": cannot open the run log for writing");
}

void RunLog::info(const std::string& line) {
  if (rank_prefix_.empty()) write(line, true);
}
void RunLog::warn(const std::string& line) { write(rank_prefix_ + "warning: " + line, true); }
void RunLog::file_only(const std::string& line) {
  if (rank_prefix_.empty()) write(line, false);
}
void RunLog::error(const std::string& line) { write(rank_prefix_ + "error: " + line, false); }

void RunLog::follow_as_rank(int64_t rank) {
  std::lock_guard<std::mutex> lock(mutex_);
  rank_prefix_ = rank > 0 ? "rank " + std::to_string(rank) + ": " : "";
}

void RunLog::write(const std::string& line, bool to_stderr) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (to_stderr) std::cerr << line << std::endl;
  if (file_) {
    const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", std::localtime(&now));
    file_ << stamp << "  " << line << '\n';
    file_.flush();
  }
}

}  // namespace pretext::pipelines
