#pragma once

// The one list of fields every Options struct exposes. The config reader fills them from YAML, the
// run directory's resolved config is written from them, and registries build objects from them,
// all through the type-erased FieldVisitor below, so `methods/` never sees YAML.

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace pretext {

/// The allowed values of one field: bounds for numbers (also applied to each list element), a set
/// of names for strings, a minimum length for lists. Checked by whoever fills the field.
struct Check {
  std::optional<double> min, max;
  bool min_exclusive = false;
  bool max_exclusive = false;
  std::vector<std::string> choices;
  std::size_t min_length = 0;

  static Check any() { return {}; }
  static Check at_least(double v) { return with_min(v, false); }
  static Check above(double v) { return with_min(v, true); }
  /// [lo, hi]
  static Check between(double lo, double hi) {
    Check c = at_least(lo);
    c.max = hi;
    return c;
  }
  /// [lo, hi)
  static Check from_below(double lo, double hi) {
    Check c = between(lo, hi);
    c.max_exclusive = true;
    return c;
  }
  static Check one_of(std::initializer_list<const char*> names) {
    Check c;
    c.choices.assign(names.begin(), names.end());
    return c;
  }
  Check& non_empty() {
    min_length = 1;
    return *this;
  }

  /// Empty when `value` is allowed, else the reason, e.g. "must be > 0".
  std::string violation(double value) const {
    if (min && (min_exclusive ? !(value > *min) : !(value >= *min))) return bound_text();
    if (max && (max_exclusive ? !(value < *max) : !(value <= *max))) return bound_text();
    return {};
  }
  std::string violation(const std::string& value) const {
    if (choices.empty()) return {};
    for (const auto& c : choices)
      if (c == value) return {};
    std::string known;
    for (const auto& c : choices) known += (known.empty() ? "" : ", ") + c;
    return "must be one of: " + known;
  }

 private:
  static Check with_min(double v, bool exclusive) {
    Check c;
    c.min = v;
    c.min_exclusive = exclusive;
    return c;
  }
  static std::string number(double v) {
    std::string s = std::to_string(v);
    s.erase(s.find_last_not_of('0') + 1);
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  }
  std::string bound_text() const {
    if (min && max)
      return std::string("must be in ") + (min_exclusive ? "(" : "[") + number(*min) + ", " +
             number(*max) + (max_exclusive ? ")" : "]");
    if (min) return std::string("must be ") + (min_exclusive ? "> " : ">= ") + number(*min);
    return std::string("must be ") + (max_exclusive ? "< " : "<= ") + number(*max);
  }
};

/// The config names of an enum's values, in the order they are documented. An enum that is a
/// config field declares, in its own namespace (found by argument-dependent lookup),
///   const EnumNames<OnBadFile>& field_names(OnBadFile);
/// and every visitor then reads, writes and checks it by these names.
template <typename E>
using EnumNames = std::vector<std::pair<const char*, E>>;

/// The config name of `value`.
template <typename E, typename = std::enable_if_t<std::is_enum_v<E>>>
std::string name_of(E value) {
  for (const auto& [name, v] : field_names(value))
    if (v == value) return name;
  return {};
}

/// Visits the fields of an Options struct by name. Implemented by the config reader (fills from
/// YAML), the config writer, and tests.
class FieldVisitor {
 public:
  virtual ~FieldVisitor() = default;
  virtual void field(const char* name, bool& value, const Check& check) = 0;
  virtual void field(const char* name, int64_t& value, const Check& check) = 0;
  virtual void field(const char* name, double& value, const Check& check) = 0;
  virtual void field(const char* name, std::string& value, const Check& check) = 0;
  virtual void field(const char* name, std::vector<int64_t>& value, const Check& check) = 0;
  virtual void field(const char* name, std::vector<double>& value, const Check& check) = 0;
  virtual void field(const char* name, std::vector<std::string>& value, const Check& check) = 0;

  /// Any field; an enum is visited as a string of its names (those of `check.choices` when
  /// given: the values this field allows).
  template <typename T>
  void operator()(const char* name, T& value, const Check& check = Check::any()) {
    if constexpr (std::is_enum_v<T>)
      enum_field(name, value, check);
    else
      field(name, value, check);
  }

 private:
  template <typename E>
  void enum_field(const char* name, E& value, const Check& check) {
    Check names = check;
    if (names.choices.empty())
      for (const auto& entry : field_names(value)) names.choices.push_back(entry.first);
    std::string text = name_of(value);
    field(name, text, names);
    // The visitor checked `text` against the names (a reader refuses others).
    for (const auto& [known, v] : field_names(value))
      if (text == known) value = v;
  }
};

}  // namespace pretext
