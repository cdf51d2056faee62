#include "pipelines/progress.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <sstream>

namespace pretext::pipelines {
namespace {

std::string duration(double seconds) {
  const auto s = static_cast<int64_t>(seconds + 0.5);
  char text[32];
  if (s >= 3600)
    std::snprintf(text, sizeof text, "%ld:%02ld:%02ld", static_cast<long>(s / 3600),
                  static_cast<long>(s / 60 % 60), static_cast<long>(s % 60));
  else
    std::snprintf(text, sizeof text, "%ld:%02ld", static_cast<long>(s / 60),
                  static_cast<long>(s % 60));
  return text;
}

}  // namespace

Progress::Progress(std::string label, int64_t total, double plain_every_s)
    : label_(std::move(label)),
      total_(total),
      plain_every_s_(plain_every_s),
      terminal_(isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

Progress::~Progress() { finish(); }

void Progress::update(int64_t done, const std::string& detail, double images_per_s) {
  const auto now = std::chrono::steady_clock::now();
  if (first_done_ < 0) {
    first_done_ = done;
    start_ = now;
  }
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double since_print = std::chrono::duration<double>(now - last_print_).count();
  const bool last = done >= total_;
  if (!terminal_ && !last && since_print < plain_every_s_) return;
  if (terminal_ && !last && since_print < 0.1) return;
  last_print_ = now;
  std::ostringstream line;
  line << label_ << ' ';
  if (terminal_) {
    constexpr int kWidth = 24;
    const int filled = total_ > 0 ? static_cast<int>(kWidth * done / total_) : kWidth;
    line << '[' << std::string(filled, '#') << std::string(kWidth - filled, '.') << "] ";
  }
  line << done << '/' << total_;
  if (!detail.empty()) line << "  " << detail;
  if (images_per_s > 0) line << "  " << static_cast<int64_t>(images_per_s) << " img/s";
  const int64_t progressed = done - first_done_;
  if (progressed > 0 && !last) line << "  eta " << duration(elapsed / progressed * (total_ - done));
  if (last) line << "  " << duration(elapsed);
  if (terminal_)
    std::cerr << '\r' << line.str() << "\033[K" << std::flush;
  else
    std::cerr << line.str() << std::endl;
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (terminal_ && first_done_ >= 0) std::cerr << std::endl;
}

}  // namespace pretext::pipelines
