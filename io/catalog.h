#pragma once

#include <cstdint>
#include <functional>
#include <set>
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
  /// A manifest's `labels` column split at ';' (the several labels of one image, BigEarthNet
  /// style), empty otherwise; `label` is then empty.
  std::vector<std::string> labels = {};
};

/// Adds the labels of `item` (its label or its labels) to `names`: how every data set gathers
/// its class names.
void add_labels(const CatalogItem& item, std::set<std::string>& names);

/// The images of a data set, from a folder tree or a CSV manifest.
///
/// Folder: every file under the root (recursively, hidden entries skipped) whose content is an
/// image format `io::open` reads; other files are skipped and counted. When a top-level folder is
/// named train, val or test it gives the split; the next folder level gives the label (the
/// ImageFolder convention), e.g. root/train/forest/0001.tif.
///
/// Manifest: a CSV with rows `path[,label][,split]`, fields optionally double-quoted, paths
/// relative to the manifest's folder. A header row starting with "path" names the columns
/// instead, in any order, among path, label, labels, split, date, place and group; `labels` holds
/// several labels of a multi-label image separated by ';' and excludes `label`.
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
  /// Whether the manifest has a `labels` column (several labels per image).
  bool multi_label() const { return multi_label_; }
  /// The folder or manifest it was read from, for messages.
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::vector<CatalogItem> items_;
  int64_t skipped_files_ = 0;
  bool multi_label_ = false;
};

}  // namespace pretext::io
