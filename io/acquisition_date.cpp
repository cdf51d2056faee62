#include "io/acquisition_date.h"

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <regex>

#include "base/errors.h"

namespace pretext::io {
namespace {

bool leap(int year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

int days_in_month(int year, int month) {
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && leap(year) ? 29 : days[month - 1];
}

// `count` digits of `text` from `at` as a number; -1 when they are not all digits.
int digits(const std::string& text, size_t at, size_t count) {
  if (at + count > text.size()) return -1;
  int value = 0;
  for (size_t i = at; i < at + count; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return -1;
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

}  // namespace

int64_t Date::days() const {
  // Days from civil (H. Hinnant's algorithm): exact for every proleptic Gregorian date.
  const int64_t y = year - (month <= 2 ? 1 : 0);
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t year_of_era = y - era * 400;
  const int64_t day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  const int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + day_of_era - 719468;
}

int Date::day_of_year() const {
  int total = day;
  for (int m = 1; m < month; ++m) total += days_in_month(year, m);
  return total;
}

std::string Date::iso() const {
  char text[16];
  std::snprintf(text, sizeof text, "%04d-%02d-%02d", year, month, day);
  return text;
}

std::optional<Date> parse_date(const std::string& text) {
  Date date;
  date.year = digits(text, 0, 4);
  if (date.year < 0) return std::nullopt;
  const bool separated = text.size() > 4 && (text[4] == '-' || text[4] == ':' || text[4] == '/');
  if (separated) {
    if (text.size() < 10 || text[7] != text[4]) return std::nullopt;
    date.month = digits(text, 5, 2);
    date.day = digits(text, 8, 2);
  } else {
    date.month = digits(text, 4, 2);
    date.day = digits(text, 6, 2);
  }
  const size_t end = separated ? 10 : 8;
  // What follows the day may be a time, never more digits of a longer number.
  if (text.size() > end && std::isdigit(static_cast<unsigned char>(text[end]))) return std::nullopt;
  if (date.month < 1 || date.month > 12 || date.day < 1 ||
      date.day > days_in_month(date.year, date.month))
    return std::nullopt;
  return date;
}

Date date_from_name(const std::string& path, const std::string& pattern) {
  std::regex expression;
  try {
    expression = std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw InputError(path + ": the date pattern '" + pattern + "' is not a regular expression (" +
                         e.what() + ")",
                     "date_pattern");
  }
  const std::string name = std::filesystem::path(path).filename().string();
  std::smatch match;
  if (!std::regex_search(name, match, expression))
    throw InputError(
        path + ": no date in the file name (the date pattern '" + pattern + "' does not match)",
        "date_pattern");
  const std::string found = match.size() > 1 ? match[1].str() : match[0].str();
  const auto date = parse_date(found);
  if (!date)
    throw InputError(path + ": '" + found + "' in the file name is not a date (the date pattern '" +
                         pattern + "')",
                     "date_pattern");
  return *date;
}

}  // namespace pretext::io
