#include "pipelines/config.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "base/errors.h"

namespace pretext::pipelines {
namespace {

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "'" + node.Scalar() + "'";
  }
}

// yaml-cpp writes doubles with 17 digits (0.10000000000000001); 15 round-trip what a person typed.
std::string shortest(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.15g", value);
  return text;
}
std::string shortest(int64_t value) { return std::to_string(value); }

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// Reads one section's fields from its YAML mapping.
class SectionReader : public FieldVisitor {
 public:
  SectionReader(ConfigFile& file, std::string section, YAML::Node node, YAML::Node resolved)
      : file_(file), section_(std::move(section)), node_(node), resolved_(resolved) {}

  void field(const char* name, bool& value, const Check&) override {
    if (auto node = present(name)) value = scalar<bool>(*node, name, "true or false");
    resolved_[name] = value;
  }
  void field(const char* name, int64_t& value, const Check& check) override {
    if (auto node = present(name)) value = number<int64_t>(*node, name, check, "an integer");
    resolved_[name] = value;
  }
  void field(const char* name, double& value, const Check& check) override {
    if (auto node = present(name)) value = number<double>(*node, name, check, "a number");
    resolved_[name] = shortest(value);
  }
  void field(const char* name, std::string& value, const Check& check) override {
    if (auto node = present(name)) {
      value = scalar<std::string>(*node, name, "a string");
      fail_if(check.violation(value), name);
    }
    resolved_[name] = value;
  }
  void field(const char* name, std::vector<int64_t>& value, const Check& check) override {
    list(name, value, check, "an integer");
  }
  void field(const char* name, std::vector<double>& value, const Check& check) override {
    list(name, value, check, "a number");
  }
  void field(const char* name, std::vector<std::string>& value, const Check& check) override {
    if (auto node = present(name)) {
      value.clear();
      if (node->IsSequence()) {
        for (const auto& element : *node)
          value.push_back(scalar<std::string>(element, name, "a string"));
      } else {
        value.push_back(scalar<std::string>(*node, name, "a string"));
      }
      if (value.size() < check.min_length) fail("must not be empty", name);
    }
    YAML::Node written(YAML::NodeType::Sequence);
    for (const auto& element : value) written.push_back(element);
    written.SetStyle(YAML::EmitterStyle::Flow);
    resolved_[name] = written;
  }

  /// Keys of the section no field claimed.
  void reject_unknown(const std::set<std::string>& other_keys) const {
    if (!node_.IsMap()) return;
    std::map<std::string, int> first_line;
    for (const auto& entry : node_) {
      const auto key = entry.first.Scalar();
      const int line = entry.first.Mark().line + 1;
      if (!first_line.emplace(key, line).second)
        throw ConfigError(file_.path() + ":" + std::to_string(line) + ": " + section_ + "." + key +
                          ": duplicate key (first at line " + std::to_string(first_line[key]) +
                          ")");
      if (std::count(visited_.begin(), visited_.end(), key) || other_keys.count(key)) continue;
      std::vector<std::string> known = visited_;
      known.insert(known.end(), other_keys.begin(), other_keys.end());
      throw ConfigError(file_.where(section_, key) + ": unknown key (known: " + join(known) + ")");
    }
  }

 private:
  std::optional<YAML::Node> present(const char* name) {
    visited_.push_back(name);
    if (!node_.IsMap() || !node_[name]) return std::nullopt;
    return node_[name];
  }
  [[noreturn]] void fail(const std::string& reason, const std::string& name) const {
    throw ConfigError(file_.where(section_, name) + ": " + reason);
  }
  void fail_if(const std::string& reason, const std::string& name) const {
    if (!reason.empty()) fail(reason, name);
  }
  template <typename T>
  T scalar(const YAML::Node& node, const std::string& name, const char* expected) const {
    if (node.IsScalar()) {
      try {
        return node.as<T>();
      } catch (const YAML::Exception&) {
      }
    }
    fail(std::string("expected ") + expected + ", got " + describe(node), name);
  }
  template <typename T>
  T number(const YAML::Node& node, const std::string& name, const Check& check,
           const char* expected) const {
    const T value = scalar<T>(node, name, expected);
    fail_if(check.violation(static_cast<double>(value)), name);
    return value;
  }
  template <typename T>
  void list(const char* name, std::vector<T>& value, const Check& check, const char* expected) {
    if (auto node = present(name)) {
      value.clear();
      if (node->IsSequence()) {
        for (const auto& element : *node)
          value.push_back(number<T>(element, name, check, expected));
      } else {
        value.push_back(number<T>(*node, name, check, expected));
      }
      if (value.size() < check.min_length) fail("must not be empty", name);
    }
    YAML::Node written(YAML::NodeType::Sequence);
    for (const T& element : value) written.push_back(shortest(element));
    written.SetStyle(YAML::EmitterStyle::Flow);
    resolved_[name] = written;
  }

  ConfigFile& file_;
  std::string section_;
  YAML::Node node_;
  YAML::Node resolved_;
  std::vector<std::string> visited_;  // field names in declaration order
};

}  // namespace

ConfigFile::ConfigFile(std::string path, YAML::Node root)
    : path_(std::move(path)), root_(root), resolved_(YAML::NodeType::Map) {}

ConfigFile ConfigFile::load(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot open config file");
  std::stringstream text;
  text << in.rdbuf();
  return parse(text.str(), path, overrides);
}

ConfigFile ConfigFile::parse(const std::string& text, const std::string& name,
                             const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(name + ":" + std::to_string(e.mark.line + 1) + ": not valid YAML (" + e.msg +
                      ")");
  }
  if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap()) throw ConfigError(name + ": expected a mapping of sections at the top");
  ConfigFile file(name, root);
  for (const auto& assignment : overrides) file.apply_override(assignment);
  return file;
}

void ConfigFile::apply_override(const std::string& assignment) {
  const auto equals = assignment.find('=');
  if (equals == std::string::npos || equals == 0)
    throw ConfigError("--set " + assignment + ": expected key.path=value");
  const std::string key = assignment.substr(0, equals);
  const auto dot = key.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == key.size() ||
      key.find('.', dot + 1) != std::string::npos)
    throw ConfigError("--set " + key + ": expected section.key, such as train.lr");
  YAML::Node value;
  try {
    // "key=" sets the empty string (YAML would read nothing as null, which no field takes).
    const std::string text = assignment.substr(equals + 1);
    value = text.empty() ? YAML::Node(std::string()) : YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError("--set " + key + ": not a valid YAML value (" + e.msg + ")");
  }
  const std::string section = key.substr(0, dot);
  if (!root_[section] || !root_[section].IsMap()) root_[section] = YAML::Node(YAML::NodeType::Map);
  root_[section][key.substr(dot + 1)] = value;
  overridden_.insert(key);
}

std::string ConfigFile::where(const std::string& section, const std::string& key) const {
  const std::string dotted = key.empty() ? section : section + "." + key;
  if (overridden_.count(dotted)) return "--set " + dotted;
  const YAML::Node& sections = root_;
  if (sections[section] && sections[section].IsMap()) {
    for (const auto& entry : sections[section]) {
      if (entry.first.Scalar() == key)
        return path_ + ":" + std::to_string(entry.first.Mark().line + 1) + ": " + dotted;
    }
  }
  if (key.empty()) {
    for (const auto& entry : sections)
      if (entry.first.Scalar() == section)
        return path_ + ":" + std::to_string(entry.first.Mark().line + 1) + ": " + dotted;
  }
  return path_ + ": " + dotted;
}

void ConfigFile::read_section(const std::string& section,
                              const std::function<void(FieldVisitor&)>& visit_fields,
                              const std::set<std::string>& other_keys) {
  YAML::Node node = root_[section];
  if (node && !node.IsMap() && !node.IsNull())
    throw ConfigError(where(section, "") + ": expected a mapping of keys, got " + describe(node));
  if (!resolved_[section]) resolved_order_.push_back(section);
  SectionReader reader(*this, section, node, resolved_[section]);
  visit_fields(reader);
  reader.reject_unknown(other_keys);
}

std::string ConfigFile::read_name(const std::string& section, const std::string& key,
                                  const std::string& fallback,
                                  const std::vector<std::string>& choices) {
  std::string value = fallback;
  const YAML::Node node = root_[section];
  if (node && node.IsMap() && node[key]) {
    if (!node[key].IsScalar())
      throw ConfigError(where(section, key) + ": expected a name, got " + describe(node[key]));
    value = node[key].Scalar();
  }
  bool known = false;
  for (const auto& c : choices) known = known || c == value;
  if (!known)
    throw ConfigError(where(section, key) + ": unknown name '" + value +
                      "' (known: " + join(choices) + ")");
  if (!resolved_[section]) resolved_order_.push_back(section);
  resolved_[section][key] = value;
  return value;
}

void ConfigFile::check_sections(const std::vector<std::string>& sections) const {
  std::map<std::string, int> first_line;
  for (const auto& entry : root_) {
    const auto name = entry.first.Scalar();
    const int line = entry.first.Mark().line + 1;
    if (!first_line.emplace(name, line).second)
      throw ConfigError(path_ + ":" + std::to_string(line) + ": " + name +
                        ": duplicate section (first at line " + std::to_string(first_line[name]) +
                        ")");
    if (std::find(sections.begin(), sections.end(), name) == sections.end())
      throw ConfigError(path_ + ":" + std::to_string(entry.first.Mark().line + 1) + ": " + name +
                        ": unknown section (known: " + join(sections) + ")");
  }
}

namespace {

std::string emit(const YAML::Node& resolved, const std::vector<std::string>& order) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  for (const auto& section : order) out << YAML::Key << section << YAML::Value << resolved[section];
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace

std::string ConfigFile::resolved_yaml() const { return emit(resolved_, resolved_order_); }

std::string ConfigFile::resolved_yaml_with(const std::string& section, const std::string& key,
                                           int64_t value) const {
  YAML::Node changed = YAML::Clone(resolved_);
  changed[section][key] = value;
  return emit(changed, resolved_order_);
}

std::optional<LineDifference> first_difference(const std::string& ours, const std::string& theirs) {
  std::istringstream left(ours), right(theirs);
  LineDifference difference;
  for (difference.line = 1;; ++difference.line) {
    const bool has_ours = static_cast<bool>(std::getline(left, difference.ours));
    const bool has_theirs = static_cast<bool>(std::getline(right, difference.theirs));
    if (!has_ours && !has_theirs) return std::nullopt;
    if (!has_ours) difference.ours.clear();
    if (!has_theirs) difference.theirs.clear();
    if (difference.ours != difference.theirs) return difference;
  }
}

}  // namespace pretext::pipelines
