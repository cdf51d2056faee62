#pragma once

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "base/fields.h"

namespace pretext::pipelines {

/// A YAML config file with its command-line overrides applied, read section by section into
/// Options structs through their field lists. Every error is a ConfigError naming the file, line
/// and key path ("configs/demo.yaml:12: method.temprature: unknown key (known: ...)"), or the
/// override ("--set train.lr: must be > 0").
class ConfigFile {
 public:
  /// Parses `path` and applies `overrides`, each "key.path=value" with a YAML value.
  static ConfigFile load(const std::string& path, const std::vector<std::string>& overrides = {});
  /// A config from text, for tests and generated runs; `name` stands for the file in messages.
  static ConfigFile parse(const std::string& text, const std::string& name,
                          const std::vector<std::string>& overrides = {});

  /// Fills the fields `visit_fields` walks from section `section`, checking types and ranges, and
  /// rejects keys of the section that are neither fields nor in `other_keys`.
  void read_section(const std::string& section,
                    const std::function<void(FieldVisitor&)>& visit_fields,
                    const std::set<std::string>& other_keys = {});
  /// A string key read before the section's fields (such as method.name), checked against
  /// `choices`; `fallback` when absent.
  std::string read_name(const std::string& section, const std::string& key,
                        const std::string& fallback, const std::vector<std::string>& choices);
  /// Rejects top-level keys not in `sections`.
  void check_sections(const std::vector<std::string>& sections) const;

  /// "file:line: section.key" for a key in the file, "--set section.key" for an override,
  /// "file: section.key" for a key the file does not have.
  std::string where(const std::string& section, const std::string& key) const;
  /// Every field read so far with the value in force, as YAML: the run's resolved config.
  std::string resolved_yaml() const;
  /// resolved_yaml() with `section.key` (a field read) given `value` instead.
  std::string resolved_yaml_with(const std::string& section, const std::string& key,
                                 int64_t value) const;
  const std::string& path() const { return path_; }

 private:
  ConfigFile(std::string path, YAML::Node root);
  void apply_override(const std::string& assignment);

  std::string path_;
  YAML::Node root_;
  std::set<std::string> overridden_;  // key paths set by --set
  YAML::Node resolved_;
  std::vector<std::string> resolved_order_;
};

/// Where two texts (resolved configs) first differ: the 1-based line and that line in each ("" past
/// the end of one).
struct LineDifference {
  int64_t line = 0;
  std::string ours, theirs;
};
/// nullopt when the texts are equal.
std::optional<LineDifference> first_difference(const std::string& ours, const std::string& theirs);

}  // namespace pretext::pipelines
