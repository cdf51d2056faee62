#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/fields.h"
#include "methods/backbone.h"
#include "methods/method.h"

namespace pretext::methods {

/// A backbone by name, with its fields open for a config to fill before it is built.
class BackboneSpec {
 public:
  virtual ~BackboneSpec() = default;
  virtual void visit_fields(FieldVisitor& visit) = 0;
  virtual std::shared_ptr<BackboneImpl> build(int64_t in_channels) const = 0;
  /// The first field that does not fit the others, as {key, reason}; nullopt when all fit.
  virtual std::optional<std::pair<std::string, std::string>> mismatch() const {
    return std::nullopt;
  }
  /// The one input side in pixels the backbone accepts; 0 when any size works.
  virtual int64_t input_size() const { return 0; }
};

/// The trained method of another run, from that run's checkpoint (BEiT's tokenizer), for images
/// of this run's bands; `method` names the method the run must have trained. The pipelines give
/// it; it throws InputError or ConfigError naming the checkpoint.
using LoadRun = std::function<std::shared_ptr<MethodImpl>(const std::string& checkpoint,
                                                          const std::string& method)>;

/// A method by name, with its fields open for a config to fill before it is built.
class MethodSpec {
 public:
  virtual ~MethodSpec() = default;
  virtual void visit_fields(FieldVisitor& visit) = 0;
  /// `make_backbone` builds a fresh backbone; methods with a teacher call it twice.
  /// `load_run` gives the runs a method learns from (BEiT's tokenizer).
  virtual std::shared_ptr<MethodImpl> build(
      const std::function<std::shared_ptr<BackboneImpl>()>& make_backbone,
      const LoadRun& load_run) const = 0;
  /// The first field that does not fit the others or the backbone named `backbone`, as
  /// {key, reason}; nullopt when all fit.
  virtual std::optional<std::pair<std::string, std::string>> mismatch(
      const std::string& /*backbone*/) const {
    return std::nullopt;
  }
  /// True when the method learns from the views' orientation (rotation prediction), so that
  /// views the augmentation turned or flipped upside down at random would contradict its labels.
  virtual bool needs_upright_views() const { return false; }
};

/// Throws ConfigError listing the known names when `name` is not one of them.
std::unique_ptr<BackboneSpec> backbone_spec(const std::string& name);
std::unique_ptr<MethodSpec> method_spec(const std::string& name);

std::vector<std::string> backbone_names();
std::vector<std::string> method_names();

}  // namespace pretext::methods
