#pragma once

#include <string>

#include <gtest/gtest.h>

#include "tests/io/test_data.h"

namespace pretext::pipelines {

/// Runs the pretext binary with `arguments`; returns what it printed (stdout and stderr) and
/// fails the test when the exit status is not `expected_status`.
inline std::string run_pretext(const std::string& arguments, int expected_status = 0) {
  std::string output;
  const int status =
      testing::run_command(std::string(PRETEXT_BINARY) + " " + arguments + " 2>&1", &output);
  EXPECT_EQ(status, expected_status) << arguments << "\n" << output;
  return output;
}

/// knn, probe and a one-epoch fine-tune that validates (so that every evaluation draws its
/// hold-outs), each with `options` (config, encoder source).
inline void run_every_evaluation(const std::string& options) {
  run_pretext("knn" + options);
  run_pretext("probe" + options);
  run_pretext("finetune" + options +
              " --set finetune.epochs=1 --set finetune.seeds=[0] --set finetune.validate=true");
}

}  // namespace pretext::pipelines
