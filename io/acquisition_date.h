#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace pretext::io {

/// A calendar day (UTC): the resolution at which scenes of one place are paired.
struct Date {
  int year = 1970;
  int month = 1;
  int day = 1;
  /// Days since 1970-01-01 (negative before).
  int64_t days() const;
  /// 1 for 1 January, up to 366.
  int day_of_year() const;
  /// "2023-06-15".
  std::string iso() const;
};

/// The date at the start of `text` as metadata and file names write it: "2023-06-15",
/// "2023:06:15 10:20:21" (TIFF), "20230615", "2023-06-15T10:20:21.024Z", "2023/06/15";
/// nullopt when it is none of these or not a day of the calendar.
std::optional<Date> parse_date(const std::string& text);

/// The date found in the file name of `path` by `pattern` (ECMAScript regular expression; its
/// first capture group, or the whole match, read by parse_date), e.g. "_(\d{8})T" for
/// Sentinel-2 product names. Throws InputError naming the file (and the option "date_pattern")
/// for an invalid pattern, when it finds nothing, or when what it finds is not a date.
Date date_from_name(const std::string& path, const std::string& pattern);

}  // namespace pretext::io
