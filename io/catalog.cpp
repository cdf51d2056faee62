#include "io/catalog.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "base/errors.h"
#include "io/acquisition_date.h"
#include "io/source.h"

namespace pretext::io {
namespace fs = std::filesystem;
namespace {

// The non-empty ';'-separated labels of a `labels` field, without surrounding spaces.
std::vector<std::string> split_labels(const std::string& field) {
  std::vector<std::string> labels;
  size_t start = 0;
  while (start <= field.size()) {
    const size_t end = std::min(field.find(';', start), field.size());
    const auto first = field.find_first_not_of(" \t", start);
    if (first != std::string::npos && first < end) {
      const auto last = field.find_last_not_of(" \t", end - 1);
      labels.push_back(field.substr(first, last - first + 1));
    }
    start = end + 1;
  }
  return labels;
}

bool is_split_name(const std::string& name) {
  return name == "train" || name == "val" || name == "test";
}

// Splits one CSV line into fields; double quotes enclose fields with commas, "" is a quote.
// Returns false when a quote is left open.
bool split_csv_line(const std::string& line, std::vector<std::string>& fields) {
  fields.assign(1, "");
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        fields.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else {
      fields.back() += c;
    }
  }
  for (auto& f : fields) {
    const auto first = f.find_first_not_of(" \t");
    const auto last = f.find_last_not_of(" \t");
    f = first == std::string::npos ? "" : f.substr(first, last - first + 1);
  }
  return !quoted;
}

}  // namespace

Catalog Catalog::from_path(const std::string& path,
                           const std::function<bool(const std::string&)>& accept) {
  std::error_code error;
  if (fs::is_directory(path, error)) return from_folder(path, accept);
  if (!fs::exists(path, error)) throw InputError(path + ": no such file or folder");
  if (fs::path(path).extension() == ".csv") return from_manifest(path);
  throw InputError(path + ": a data root must be a folder or a .csv manifest");
}

Catalog Catalog::from_folder(const std::string& root,
                             const std::function<bool(const std::string&)>& accept) {
  std::error_code error;
  if (!fs::is_directory(root, error)) throw InputError(root + ": not a folder");
  Catalog catalog;
  catalog.source_ = root;
  fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, error);
  if (error) throw InputError(root + ": cannot list (" + error.message() + ")");
  for (; it != fs::recursive_directory_iterator(); it.increment(error)) {
    if (error) throw InputError(root + ": cannot list (" + error.message() + ")");
    const fs::path& path = it->path();
    // error_code overloads: a dangling link or a vanished file must not throw past us.
    std::error_code ignored;
    if (path.filename().string().rfind('.', 0) == 0) {
      if (it->is_directory(ignored)) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ignored)) continue;
    if (accept ? !accept(path.string()) : detect_format(path.string()) == Format::kUnknown) {
      ++catalog.skipped_files_;
      continue;
    }
    CatalogItem item{path.string(), "", "", "", ""};
    std::vector<std::string> folders;
    // Paths from the iterator all start with root, so the relative part is a plain suffix.
    for (const auto& part : path.parent_path().lexically_relative(root)) {
      if (part != ".") folders.push_back(part.string());
    }
    size_t level = 0;
    if (!folders.empty() && is_split_name(folders[0])) item.split = folders[level++];
    if (folders.size() > level) item.label = folders[level];
    catalog.items_.push_back(item);
  }
  if (catalog.items_.empty())
    throw InputError(root + ": no image files found (" + std::to_string(catalog.skipped_files_) +
                     " other files)");
  // Directory iteration order is the file system's: sort so that a catalog is reproducible.
  std::sort(catalog.items_.begin(), catalog.items_.end(),
            [](const CatalogItem& a, const CatalogItem& b) { return a.path < b.path; });
  return catalog;
}

Catalog Catalog::from_manifest(const std::string& csv_path) {
  std::ifstream file(csv_path);
  if (!file) throw InputError(csv_path + ": cannot open");
  const fs::path base = fs::path(csv_path).parent_path();
  Catalog catalog;
  catalog.source_ = csv_path;
  std::string line;
  std::vector<std::string> fields;
  // Column order: positional path, label, split unless a header row names them.
  std::vector<std::string> columns = {"path", "label", "split"};
  bool named = false;
  for (int64_t number = 1; std::getline(file, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::string where = csv_path + ":" + std::to_string(number) + ": ";
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    if (!split_csv_line(line, fields)) throw InputError(where + "unclosed quote");
    if (number == 1 && fields[0] == "path") {
      for (const auto& name : fields)
        if (name != "path" && name != "label" && name != "labels" && name != "split" &&
            name != "date" && name != "place" && name != "group")
          throw InputError(where + "unknown column '" + name +
                           "' (known: path, label, labels, split, date, place, group)");
      const auto has = [&](const char* name) {
        return std::find(fields.begin(), fields.end(), name) != fields.end();
      };
      if (has("label") && has("labels"))
        throw InputError(where +
                         "columns 'label' (one per image) and 'labels' (several, ';'-separated) "
                         "exclude each other");
      catalog.multi_label_ = has("labels");
      columns = fields;
      named = true;
      continue;
    }
    if (fields.size() > columns.size())
      throw InputError(where + "expected " +
                       (named ? std::to_string(columns.size()) + " fields"
                              : std::string("path[,label][,split]")) +
                       ", found " + std::to_string(fields.size()) + " fields");
    if (fields[0].empty()) throw InputError(where + "empty path");
    CatalogItem item;
    for (size_t i = 0; i < fields.size(); ++i) {
      const auto& column = columns[i];
      if (column == "labels") {
        item.labels = split_labels(fields[i]);
        continue;
      }
      (column == "path"    ? item.path
       : column == "label" ? item.label
       : column == "split" ? item.split
       : column == "date"  ? item.date
       : column == "place" ? item.place
                           : item.group) = fields[i];
    }
    fs::path path(item.path);
    if (path.is_relative()) path = base / path;
    item.path = path.string();
    std::error_code error;
    if (!fs::is_regular_file(path, error))
      throw InputError(where + path.string() + ": no such file");
    if (!item.split.empty() && !is_split_name(item.split))
      throw InputError(where + "split '" + item.split + "' is not one of train, val, test");
    if (!item.date.empty() && !parse_date(item.date))
      throw InputError(where + "date '" + item.date + "' is not a date (YYYY-MM-DD)");
    catalog.items_.push_back(item);
  }
  if (file.bad()) throw InputError(csv_path + ": read failed");
  if (catalog.items_.empty()) throw InputError(csv_path + ": manifest lists no images");
  return catalog;
}

void add_labels(const CatalogItem& item, std::set<std::string>& names) {
  if (!item.label.empty()) names.insert(item.label);
  names.insert(item.labels.begin(), item.labels.end());
}

std::vector<std::string> Catalog::class_names() const {
  std::set<std::string> names;
  for (const auto& item : items_) add_labels(item, names);
  return {names.begin(), names.end()};
}

Catalog Catalog::with_split(const std::string& split) const {
  Catalog subset;
  subset.source_ = source_;
  subset.multi_label_ = multi_label_;
  for (const auto& item : items_)
    if (split.empty() || item.split == split) subset.items_.push_back(item);
  return subset;
}

bool Catalog::has_splits() const {
  return std::any_of(items_.begin(), items_.end(),
                     [](const CatalogItem& item) { return !item.split.empty(); });
}

}  // namespace pretext::io
