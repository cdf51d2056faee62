#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace pretext::io {

/// One image of a data set. `label` and `split` are empty when the catalog does not say.
struct CatalogItem {
  std::string path;
  std::string label;
  std::string split;
  /// A manifest's `date` column (as parse_date reads it), "" otherwise: the acquisition date of
  /// a scene, ahead of file names and metadata.
  std::string date = "";
  /// A manifest's `place` column, "" otherwise: scenes with the same place are one time series.
  std::string place = "";
  /// A manifest's `group` column (a patient or site ID), "" otherwise: images of one group stay
  /// on one side of every evaluation split.
  std::string group = "";
};

/// The images of a data set, from a folder tree or a CSV manifest.
///
/// Folder: every file under the root (recursively, hidden entries skipped) whose content is an
/// image format `io::open` reads; other files are skipped and counted. When a top-level folder is
/// named train, val or test it gives the split; the next folder level gives the label (the
/// ImageFolder convention), e.g. root/train/forest/0001.tif.
///
/// Manifest: a CSV with rows `path[,label][,split]`, fields optionally double-quoted, paths
/// relative to the manifest's folder. A header row starting with "path" names the columns
/// instead, in any order, among path, label, split, date and place.
class Catalog {
 public:
  /// A folder, or a file ending in .csv. Throws InputError naming the path (and CSV line) for a
  /// missing root, a folder without images, or a bad row.
  /// `accept`, when given, decides which files of a folder belong (e.g. io::is_slide) instead of
  /// the content check for image formats.
  static Catalog from_path(const std::string& path,
                           const std::function<bool(const std::string&)>& accept = {});
  static Catalog from_folder(const std::string& root,
                             const std::function<bool(const std::string&)>& accept = {});
  static Catalog from_manifest(const std::string& csv_path);

  const std::vector<CatalogItem>& items() const { return items_; }
  int64_t size() const { return static_cast<int64_t>(items_.size()); }
  /// Files under a folder root that were not images.
  int64_t skipped_files() const { return skipped_files_; }
  /// Sorted distinct non-empty labels; a label's class index is its position here.
  std::vector<std::string> class_names() const;
  /// Items whose split is `split`; all items when `split` is empty.
  Catalog with_split(const std::string& split) const;
  bool has_splits() const;

 private:
  std::vector<CatalogItem> items_;
  int64_t skipped_files_ = 0;
};

}  // namespace pretext::io
