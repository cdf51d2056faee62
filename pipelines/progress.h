#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace pretext::pipelines {

/// Progress of a loop of known length on stderr: a bar redrawn in place (step, loss, images/s,
/// ETA) when stderr is a terminal, a plain line every `plain_every_s` seconds when it is not.
class Progress {
 public:
  Progress(std::string label, int64_t total, double plain_every_s = 10.0);
  ~Progress();
  /// `done` steps of `total`; `detail` such as "loss 4.12"; `images_per_s` 0 to leave out.
  void update(int64_t done, const std::string& detail = "", double images_per_s = 0.0);
  /// Ends the bar's line.
  void finish();

 private:
  std::string label_;
  int64_t total_;
  double plain_every_s_;
  bool terminal_;
  bool finished_ = false;
  int64_t first_done_ = -1;
  std::chrono::steady_clock::time_point start_, last_print_;
};

}  // namespace pretext::pipelines
