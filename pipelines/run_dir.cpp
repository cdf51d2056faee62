#include "pipelines/run_dir.h"

#include <filesystem>
#include <system_error>

#include "base/errors.h"

namespace pretext::pipelines {

void RunDir::create() const {
  std::error_code error;
  std::filesystem::create_directories(path_, error);
  if (error)
    throw InputError(path_ + ": cannot create the run directory (" + error.message() + ")");
}

}  // namespace pretext::pipelines
