#include "pipelines/run_config.h"

#include <regex>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/cuda.h>
#include <torch/utils.h>

#include "base/errors.h"
#include "pipelines/checkpoint.h"

namespace pretext::pipelines {

void RunOptions::visit_fields(FieldVisitor& visit) {
  visit("dir", dir_);
  visit("seed", seed_, Check::at_least(0));
  visit("threads", threads_, Check::between(0, 1024));
  visit("device", device_);
  visit("precision", precision_);
  visit("tf32", tf32_);
  visit("timeout_s", timeout_s_, Check::between(1, 86400));
}

void DataOptions::visit_fields(FieldVisitor& visit) {
  visit("root", root_);
  visit("kind", kind_);
  visit("image_size", image_size_, Check::between(4, 4096));
  visit("bands", bands_, Check::at_least(1));
  visit("split", split_, Check::one_of({"", "train", "val", "test"}));
  visit("workers", workers_, Check::between(1, 256));
  visit("prefetch", prefetch_, Check::between(1, 1024));
  visit("on_bad_file", on_bad_file_);
  images_.visit_fields(visit);
  slices_.visit_fields(visit);
  tiles_.visit_fields(visit);
  scenes_.visit_fields(visit);
  visit("statistics_windows", statistics_windows_, Check::between(1, 1 << 20));
  visit("gdal_cache_mb", gdal_cache_mb_, Check::between(1, 1 << 20));
}

io::ImageDatasetOptions DataOptions::image_options() const {
  return io::ImageDatasetOptions(images_).image_size(image_size_).bands(bands_);
}

domains::SliceDatasetOptions DataOptions::slice_options(bool pretraining) const {
  return domains::SliceDatasetOptions(slices_)
      .image_size(image_size_)
      .min_body_fraction(pretraining ? slices_.min_body_fraction() : 0.0)
      .on_bad_file(on_bad_file_)
      .replace_undecodable(pretraining && on_bad_file_ == io::OnBadFile::kSkip);
}

domains::TileDatasetOptions DataOptions::tile_options(const std::string& thumbnail_dir) const {
  return domains::TileDatasetOptions(tiles_)
      .tissue(domains::TissueOptions(tiles_.tissue()).tile_size(image_size_))
      .on_bad_file(on_bad_file_)
      .thumbnail_dir(thumbnail_dir);
}

domains::SceneOptions DataOptions::scene_options(bool pretraining) const {
  return domains::SceneOptions(scenes_)
      .window_size(image_size_)
      .bands(bands_)
      .frames(pretraining ? scenes_.frames() : 1)
      .on_bad_file(on_bad_file_);
}

namespace {

void require(bool ok, const ConfigFile& file, const std::string& section, const std::string& key,
             const std::string& reason) {
  if (!ok) throw ConfigError(file.where(section, key) + ": " + reason);
}

RunConfig read(std::shared_ptr<ConfigFile> file) {
  RunConfig config;
  config.file = file;
  file->check_sections(
      {"run", "data", "augment", "model", "method", "train", "eval", "probe", "finetune"});
  file->read_section("run", [&](FieldVisitor& v) { config.run.visit_fields(v); });
  file->read_section("data", [&](FieldVisitor& v) { config.data.visit_fields(v); });
  file->read_section("augment", [&](FieldVisitor& v) { config.augment.visit_fields(v); });
  config.backbone_name =
      file->read_name("model", "backbone", "resnet18", methods::backbone_names());
  config.backbone = methods::backbone_spec(config.backbone_name);
  file->read_section("model",
                     [&](FieldVisitor& v) {
                       config.backbone->visit_fields(v);
                       v("sync_bn", config.sync_batch_norm);
                     },
                     {"backbone"});
  config.method_name = file->read_name("method", "name", "simclr", methods::method_names());
  config.method = methods::method_spec(config.method_name);
  file->read_section("method", [&](FieldVisitor& v) { config.method->visit_fields(v); }, {"name"});
  file->read_section("train", [&](FieldVisitor& v) { config.train.visit_fields(v); });
  file->read_section("eval", [&](FieldVisitor& v) { config.eval.visit_fields(v); });
  file->read_section("probe", [&](FieldVisitor& v) { config.probe.visit_fields(v); });
  file->read_section("finetune", [&](FieldVisitor& v) { config.finetune.visit_fields(v); });

  if (const auto bad = config.method->mismatch(config.backbone_name))
    require(false, *file, "method", bad->first, bad->second);
  if (const auto bad = config.backbone->mismatch())
    require(false, *file, "model", bad->first, bad->second);
  if (const int64_t size = config.backbone->input_size(); size > 0) {
    require(config.augment.size() == size, *file, "augment", "size",
            std::to_string(config.augment.size()) + ", but the encoder takes " +
                std::to_string(size) + "x" + std::to_string(size) + " images (model.image_size)");
    require(config.data.image_size() == size, *file, "data", "image_size",
            std::to_string(config.data.image_size()) + ", but the encoder takes " +
                std::to_string(size) + "x" + std::to_string(size) + " images (model.image_size)");
  }
  require(config.train.betas().size() == 2, *file, "train", "betas",
          "must be two numbers, for the gradient's mean and its square's");
  const auto& a = config.augment;
  require(a.crop_scale_min() <= a.crop_scale_max(), *file, "augment", "crop_scale_min",
          "must not exceed augment.crop_scale_max");
  require(a.crop_ratio_min() <= a.crop_ratio_max(), *file, "augment", "crop_ratio_min",
          "must not exceed augment.crop_ratio_max");
  require(a.blur_sigma_min() <= a.blur_sigma_max(), *file, "augment", "blur_sigma_min",
          "must not exceed augment.blur_sigma_max");
  if (config.method->needs_upright_views()) {
    const std::string why = " turns some views at random, so the turn " + config.method_name +
                            " names would not be the one the view shows; set it to 0";
    require(a.rotate90_p() == 0, *file, "augment", "rotate90_p",
            std::to_string(a.rotate90_p()) + why);
    require(a.vflip_p() == 0, *file, "augment", "vflip_p",
            std::to_string(a.vflip_p()) + " turns some views upside down (mirrored)" +
                why.substr(why.find(',')));
  }
  require(!config.data.root().empty(), *file, "data", "root",
          "required: a folder of images or a CSV manifest");
  try {
    const torch::Device device(config.run.device());
    require(device.is_cpu() || torch::cuda::is_available(), *file, "run", "device",
            "'" + config.run.device() + "' requested, but this LibTorch build sees no CUDA device");
  } catch (const c10::Error&) {
    require(false, *file, "run", "device", "expected cpu, cuda or cuda:N");
  }
  require(
      config.run.precision() != Precision::kFp16 || torch::Device(config.run.device()).is_cuda(),
      *file, "run", "precision",
      "fp16 needs run.device cuda (CPU autocast computes in bf16: use precision bf16)");
  if (!config.data.bands().empty()) config.check_bands(config.data.bands().size());
  require(config.augment.window_levels().size() == config.augment.window_widths().size(), *file,
          "augment", "window_widths",
          std::to_string(config.augment.window_widths().size()) + " widths for " +
              std::to_string(config.augment.window_levels().size()) +
              " levels (one width per window_levels entry)");
  require(config.augment.window_percentiles().size() == 2 &&
              config.augment.window_percentiles()[0] < config.augment.window_percentiles()[1],
          *file, "augment", "window_percentiles", "must be two percentiles, low then high");
  try {
    std::regex(config.data.scenes().date_pattern(), std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    require(false, *file, "data", "date_pattern",
            "'" + config.data.scenes().date_pattern() + "' is not a regular expression (" +
                e.what() + ")");
  }
  const int64_t slab = config.data.slices().slab();
  require(slab % 2 == 1, *file, "data", "slab",
          std::to_string(slab) + " (must be odd: slices centred on the sampled one)");
  return config;
}

std::string numbers(const std::vector<double>& values) {
  std::string text;
  for (const double v : values) text += (text.empty() ? "" : ", ") + std::to_string(v);
  return "[" + text + "]";
}

// The method another run trained, from its checkpoint, on the CPU, for images of `in_channels`
// bands: what `config`'s method learns from (BEiT's tokenizer). Leaves the global generators as
// it found them (freshly seeded with this run's seed, the CUDA ones undrawn), so this run's
// weights are those it would have without it.
std::shared_ptr<methods::MethodImpl> trained_method(const RunConfig& config,
                                                    const std::string& path,
                                                    const std::string& method_name,
                                                    int64_t in_channels) {
  const auto other =
      parse_run_config(checkpoint_config(path), path, {"run.device=cpu", "run.precision=fp32"});
  if (other.method_name != method_name)
    throw InputError(path + ": the checkpoint of a " + other.method_name + " run, not of a " +
                     method_name + " run");
  if (other.augment.mean() != config.augment.mean() || other.augment.std() != config.augment.std())
    throw InputError(path + ": its run normalised the views with augment.mean " +
                     numbers(other.augment.mean()) + " and std " + numbers(other.augment.std()) +
                     ", this run with " + numbers(config.augment.mean()) + " and " +
                     numbers(config.augment.std()) + ": it would not see the same pixels");
  auto generator = at::detail::getDefaultCPUGenerator();
  const auto state = generator.get_state();
  auto method = other.build_method(in_channels);
  generator.set_state(state);
  torch::cuda::manual_seed_all(static_cast<uint64_t>(config.run.seed()));
  load_checkpoint(path, *method, nullptr, torch::kCPU);
  return method;
}

}  // namespace

std::shared_ptr<methods::MethodImpl> RunConfig::build_method(int64_t in_channels) const {
  torch::manual_seed(static_cast<uint64_t>(run.seed()));
  try {
    return method->build([&] { return backbone->build(in_channels); },
                         [&](const std::string& path, const std::string& trained) {
                           return trained_method(*this, path, trained, in_channels);
                         });
  } catch (const ConfigError& e) {
    // What only the data decides (band_groups against its bands), told with the key's place in
    // the config file.
    if (e.key().empty()) throw;
    throw ConfigError(file->where(e.section(), e.key()) + ": " + e.reason());
  }
}

void RunConfig::check_bands(int64_t channels) const {
  for (const char* key : {"mean", "std"}) {
    const auto& values = std::string(key) == "mean" ? augment.mean() : augment.std();
    require(values.size() == 1 || static_cast<int64_t>(values.size()) == channels, *file, "augment",
            key,
            "has " + std::to_string(values.size()) + " values; the data has " +
                std::to_string(channels) + " bands (give one value, or one per band)");
  }
}

RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides) {
  return read(std::make_shared<ConfigFile>(ConfigFile::load(path, overrides)));
}

RunConfig parse_run_config(const std::string& text, const std::string& name,
                           const std::vector<std::string>& overrides) {
  return read(std::make_shared<ConfigFile>(ConfigFile::parse(text, name, overrides)));
}

}  // namespace pretext::pipelines
