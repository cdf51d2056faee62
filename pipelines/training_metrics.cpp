#include "pipelines/training_metrics.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "base/errors.h"

namespace pretext::pipelines {
namespace {

constexpr std::array<const char*, 5> kColumns = {"step", "epoch", "loss", "lr", "images_per_s"};

std::vector<std::string> cells_of(const std::string& line) {
  std::vector<std::string> cells;
  std::istringstream row(line);
  std::string cell;
  while (std::getline(row, cell, ',')) cells.push_back(cell);
  return cells;
}

}  // namespace

std::string training_csv_header() {
  std::string header;
  for (const char* column : kColumns) header += (header.empty() ? "" : ",") + std::string(column);
  return header;
}

std::string to_csv(const TrainingRow& row) {
  std::ostringstream line;
  line << row.step << ',' << row.epoch << ',' << row.loss << ',' << row.lr << ','
       << row.images_per_s;
  return line.str();
}

std::vector<TrainingRow> read_training_rows(const std::string& path) {
  std::ifstream csv(path);
  std::string line;
  if (!std::getline(csv, line)) return {};
  const auto header = cells_of(line);
  std::array<size_t, kColumns.size()> at{};
  for (size_t c = 0; c < kColumns.size(); ++c) {
    const auto found = std::find(header.begin(), header.end(), kColumns[c]);
    if (found == header.end())
      throw InputError(path + ": no column '" + kColumns[c] + "' in the header");
    at[c] = static_cast<size_t>(found - header.begin());
  }
  std::vector<TrainingRow> rows;
  for (int64_t number = 2; std::getline(csv, line); ++number) {
    const auto cells = cells_of(line);
    std::array<double, kColumns.size()> values{};
    for (size_t c = 0; c < kColumns.size(); ++c) {
      const char* text = at[c] < cells.size() ? cells[at[c]].c_str() : "";
      char* end = nullptr;
      values[c] = std::strtod(text, &end);
      if (end == text || *end != '\0')
        throw InputError(path + ":" + std::to_string(number) + ": " + kColumns[c] +
                         " is not a number");
    }
    rows.push_back({static_cast<int64_t>(values[0]), static_cast<int64_t>(values[1]), values[2],
                    values[3], values[4]});
  }
  return rows;
}

}  // namespace pretext::pipelines
