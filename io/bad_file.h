#pragma once

#include <string>

#include "base/fields.h"

namespace pretext::io {

/// What to do with a file that cannot be used: stop naming it, or leave it out and count it.
enum class OnBadFile { kFail, kSkip };
inline const EnumNames<OnBadFile>& field_names(OnBadFile) {
  static const EnumNames<OnBadFile> names = {{"fail", OnBadFile::kFail},
                                             {"skip", OnBadFile::kSkip}};
  return names;
}

/// A file skipped (under OnBadFile::kSkip) and why; the message names the file.
struct BadFile {
  std::string message;
};

}  // namespace pretext::io
