#include "pipelines/sidecar.h"

#include <filesystem>

#include <nlohmann/json.hpp>

namespace pretext::pipelines {
namespace {

/// Collects a backbone's config fields.
class JsonFields : public FieldVisitor {
 public:
  explicit JsonFields(nlohmann::ordered_json& json) : json_(json) {}
  void field(const char* name, bool& v, const Check&) override { json_[name] = v; }
  void field(const char* name, int64_t& v, const Check&) override { json_[name] = v; }
  void field(const char* name, double& v, const Check&) override { json_[name] = v; }
  void field(const char* name, std::string& v, const Check&) override { json_[name] = v; }
  void field(const char* name, std::vector<int64_t>& v, const Check&) override { json_[name] = v; }
  void field(const char* name, std::vector<double>& v, const Check&) override { json_[name] = v; }
  void field(const char* name, std::vector<std::string>& v, const Check&) override {
    json_[name] = v;
  }

 private:
  nlohmann::ordered_json& json_;
};

/// The radiology window of the preprocessing: the mode, then its presets or percentiles.
nlohmann::ordered_json window_json(const domains::AugmentOptions& augment) {
  nlohmann::ordered_json window;
  window["mode"] = name_of(augment.window());
  if (augment.window() == domains::WindowMode::kPresets) {
    for (size_t i = 0; i < augment.window_levels().size(); ++i)
      window["presets"].push_back(
          {{"level", augment.window_levels()[i]}, {"width", augment.window_widths()[i]}});
  } else {
    window["percentiles"] = augment.window_percentiles();
  }
  return window;
}

nlohmann::ordered_json preprocessing_json(const RunConfig& config, const PreparedData& data) {
  const auto& augment = data.augment;
  nlohmann::ordered_json pre;
  pre["bands"] = config.data.bands();
  pre["value_scale"] = config.data.images().value_scale();
  pre["image_size"] = config.data.image_size();
  pre["mean"] = augment.mean();
  pre["std"] = augment.std();
  if (config.data.kind() == DataKind::kRasters) {
    pre["band_names"] = config.data.scenes().band_names();
    pre["ground_sample_distance"] = config.data.scenes().ground_sample_distance();
    pre["steps"] =
        "read the bands (band_names by description, else bands by number; empty: all) of a "
        "window of image_size pixels at ground_sample_distance map units per pixel (0: the "
        "file's own), apply each band's scale and offset, set nodata / masked pixels to the "
        "band's mean, then (x - mean) / std per band (mean and std measured on the pretraining "
        "data)";
  } else if (augment.window() == domains::WindowMode::kNone) {
    pre["steps"] =
        "read the bands (1-based; empty: all), multiply by value_scale (0: divide by the data "
        "type's full scale, 255 for uint8), resample to image_size, then (x - mean) / std per "
        "band";
  } else {
    pre["slab"] = config.data.slices().slab();
    pre["window"] = window_json(augment);
    pre["steps"] =
        "decode the slice (DICOM: rescale slope and intercept applied, Hounsfield units for CT; "
        "MONOCHROME1 inverted), stack slab adjacent slices as channels, resample to image_size, "
        "window: x = clip((x - (level - width / 2)) / width, 0, 1) with the first preset (or "
        "level and width from the image's percentiles), then (x - mean) / std";
  }
  return pre;
}

}  // namespace

std::string sidecar_path(const std::string& weights) {
  return std::filesystem::path(weights).replace_extension(".json").string();
}

nlohmann::ordered_json encoder_sidecar(const RunConfig& config, const PreparedData& data,
                                       const EncoderSource& source, methods::BackboneImpl& encoder,
                                       const std::string& weights) {
  nlohmann::ordered_json json;
  json["format"] = "pretext-encoder/1";
  json["weights"] = std::filesystem::path(weights).filename().string();
  json["source"] = source.describe(config);
  json["method"] = config.method_name;
  auto& backbone = json["backbone"];
  backbone["name"] = config.backbone_name;
  JsonFields fields(backbone);
  config.backbone->visit_fields(fields);
  backbone["in_channels"] = data.bands();
  backbone["feature_dim"] = encoder.feature_dim();
  json["preprocessing"] = preprocessing_json(config, data);
  return json;
}

}  // namespace pretext::pipelines
