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

void RunLog::info(const std::string& line) { write(line, true); }
void RunLog::warn(const std::string& line) { write("warning: " + line, true); }
void RunLog::file_only(const std::string& line) { write(line, false); }

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
