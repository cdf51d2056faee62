#include "pipelines/report.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <torch/nn/functional.h>
#include <torch/types.h>
#include <nlohmann/json.hpp>

#include "base/errors.h"
#include "domains/augment.h"
#include "io/gdal_raster.h"
#include "methods/vit.h"
#include "pipelines/commands.h"
#include "pipelines/plot.h"
#include "pipelines/results.h"
#include "pipelines/run_dir.h"

namespace pretext::pipelines {
namespace fs = std::filesystem;
namespace {

std::string base64(const std::string& bytes) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (static_cast<uint8_t>(bytes[i]) << 16) |
                       (static_cast<uint8_t>(bytes[i + 1]) << 8) |
                       static_cast<uint8_t>(bytes[i + 2]);
    for (const int shift : {18, 12, 6, 0}) out += table[(v >> shift) & 63];
  }
  if (i < bytes.size()) {
    uint32_t v = static_cast<uint8_t>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? table[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string percent(double fraction) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%.2f%%", 100.0 * fraction);
  return buffer;
}

std::string not_run(const std::string& command) {
  return "<p class=\"missing\">Not run yet: <code>pretext " + command +
         " --config ...</code></p>\n";
}

/// Loss and learning rate against the step, from metrics.csv.
std::string training_section(const std::string& dir) {
  std::ifstream csv(RunDir(dir).metrics());
  std::string line;
  if (!std::getline(csv, line)) return not_run("pretrain");
  Series loss{"loss", {}, {}}, lr{"learning rate", {}, {}};
  std::vector<double> rates;
  while (std::getline(csv, line)) {
    std::vector<double> cells;
    std::istringstream row(line);
    std::string cell;
    while (std::getline(row, cell, ',')) cells.push_back(std::strtod(cell.c_str(), nullptr));
    if (cells.size() < 5) continue;
    loss.x.push_back(cells[0]);
    loss.y.push_back(cells[2]);
    lr.x.push_back(cells[0]);
    lr.y.push_back(cells[3]);
    rates.push_back(cells[4]);
  }
  if (loss.x.empty()) return not_run("pretrain");
  std::sort(rates.begin(), rates.end());
  PlotOptions loss_plot{"Pretraining loss", "step", "loss"};
  PlotOptions lr_plot{"Learning rate", "step", "learning rate"};
  std::ostringstream html;
  html << "<p>" << loss.x.back() << " steps, median " << std::lround(rates[rates.size() / 2])
       << " images/s, last loss " << loss.y.back() << ".</p>\n<div class=\"row\">"
       << svg_line_plot({loss}, loss_plot) << svg_line_plot({lr}, lr_plot) << "</div>\n";
  return html.str();
}

std::string confusion_table(const ClassificationMetrics& metrics,
                            const std::vector<std::string>& classes) {
  std::ostringstream html;
  html << "<table class=\"confusion\"><tr><th>true \\ predicted</th>";
  for (const auto& name : classes) html << "<th>" << xml_escape(name) << "</th>";
  html << "</tr>\n";
  const auto& rows = metrics.confusion;
  for (size_t r = 0; r < rows.size(); ++r) {
    html << "<tr><th>" << xml_escape(r < classes.size() ? classes[r] : "") << "</th>";
    for (size_t c = 0; c < rows[r].size(); ++c)
      html << "<td" << (r == c ? " class=\"hit\"" : "") << ">" << rows[r][c] << "</td>";
    html << "</tr>\n";
  }
  html << "</table>\n";
  return html.str();
}

std::string metrics_cells(const ClassificationMetrics& m) {
  return "<td>" + percent(m.top1) + "</td><td>" + percent(m.balanced_accuracy) + "</td><td>" +
         percent(m.macro_f1) + "</td><td>" + (m.auroc ? percent(*m.auroc) : std::string("-")) +
         "</td>";
}

const char* kMetricsHeader =
    "<th>top-1</th><th>balanced accuracy</th><th>macro-F1</th><th>AUROC</th>";

// A result file as its record; nullopt when it is missing, or being rewritten (the next report
// picks it up).
template <typename Record>
std::optional<Record> read_record(const std::string& path,
                                  Record (*from_json)(const nlohmann::json&)) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  try {
    return from_json(nlohmann::json::parse(in));
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

std::string knn_section(const std::string& dir) {
  const auto record = read_record(RunDir(dir).knn_json(), knn_record);
  if (!record || record->results.empty()) return not_run("knn");
  std::ostringstream html;
  html << "<p>Encoder " << xml_escape(record->encoder) << "; " << record->examples.train
       << " training, " << record->examples.test << " test images.</p>\n<table><tr><th>k</th>"
       << kMetricsHeader << "</tr>\n";
  for (const auto& r : record->results)
    html << "<tr><td>" << r.k << "</td>" << metrics_cells(r.metrics) << "</tr>\n";
  html << "</table>\n" << confusion_table(record->results.back().metrics, record->classes);
  return html.str();
}

std::string probe_section(const std::string& dir) {
  const auto record = read_record(RunDir(dir).probe_json(), probe_record);
  if (!record) return not_run("probe");
  std::ostringstream html;
  html << "<p>Encoder " << xml_escape(record->encoder) << "; learning rate " << record->lr
       << ", weight decay " << record->weight_decay;
  if (record->val_top1) html << ", chosen on validation top-1 " << percent(*record->val_top1);
  html << ".</p>\n<table><tr>" << kMetricsHeader << "</tr><tr>" << metrics_cells(record->test)
       << "</tr></table>\n";
  if (fs::exists(RunDir(dir).probe_svg())) html << read_text(RunDir(dir).probe_svg());
  html << confusion_table(record->test, record->classes);
  return html.str();
}

std::string finetune_section(const std::string& dir) {
  const auto record = read_record(RunDir(dir).finetune_json(), finetune_record);
  if (!record || record->seeds.empty()) return not_run("finetune");
  std::ostringstream html;
  html << "<p>Encoder " << xml_escape(record->encoder) << "; mean top-1 "
       << percent(record->mean.top1) << " &plusmn; " << percent(record->std.top1) << " over "
       << record->seeds.size() << " seeds.</p>\n<table><tr><th>seed</th>"
       << "<th>labels</th><th>epoch kept</th>" << kMetricsHeader << "</tr>\n";
  for (const auto& s : record->seeds)
    html << "<tr><td>" << s.seed << "</td><td>" << s.labelled << "</td><td>" << s.best_epoch
         << " of " << s.epochs_run << "</td>" << metrics_cells(s.test) << "</tr>\n";
  html << "</table>\n" << confusion_table(record->seeds[0].test, record->classes);
  return html.str();
}

/// Rows of `count` images [count, bands, size, size] in [0, 1] tiled with 2-pixel gaps into one
/// PNG <img>; small images are drawn larger.
std::string image_grid(const std::vector<torch::Tensor>& rows, const std::string& alt) {
  const int64_t count = rows[0].size(0), bands = rows[0].size(1), size = rows[0].size(2);
  const int64_t gap = 2, rows_n = static_cast<int64_t>(rows.size());
  auto grid =
      torch::ones({bands, rows_n * size + (rows_n - 1) * gap, count * size + (count - 1) * gap});
  for (int64_t r = 0; r < rows_n; ++r)
    for (int64_t i = 0; i < count; ++i)
      grid.slice(1, r * (size + gap), r * (size + gap) + size)
          .slice(2, i * (size + gap), i * (size + gap) + size)
          .copy_(rows[r][i].clamp(0, 1));
  const int64_t scale = std::max<int64_t>(1, 96 / size);
  return "<img class=\"pixels\" width=\"" + std::to_string(grid.size(2) * scale) +
         "\" src=\"data:image/png;base64," + base64(io::encode_png(grid * 255)) + "\" alt=\"" +
         alt + "\">\n";
}

/// The first images of the data set [count, bands, size, size] as read, resampled to the
/// augmentation's size.
torch::Tensor first_images(const RunConfig& config, const io::Dataset& dataset) {
  const int64_t count = std::min<int64_t>(8, dataset.size());
  std::vector<torch::Tensor> images;
  for (int64_t i = 0; i < count; ++i) images.push_back(dataset.get(i).pixels);
  namespace F = torch::nn::functional;
  const int64_t size = config.augment.size();
  return F::interpolate(torch::stack(images), F::InterpolateFuncOptions()
                                                  .size(std::vector<int64_t>{size, size})
                                                  .mode(torch::kBilinear)
                                                  .align_corners(false));
}

/// The first date of each image (a temporal run stacks augment.frames dates along the bands).
torch::Tensor first_frame(const RunConfig& config, const torch::Tensor& images) {
  return images.narrow(1, 0, images.size(1) / config.augment.frames());
}

/// Rows: the first images as read, then two augmented views of each (of two dates in a temporal
/// run).
std::string views_section(const RunConfig& config, RunLog& log) {
  const auto dataset = open_dataset(config, true, log);
  const auto stacks = first_images(config, *dataset);
  const auto views = domains::ViewAugment(config.augment)(stacks, config.run.seed(), 0);
  const auto originals = first_frame(config, stacks);
  const auto shown = [&](const torch::Tensor& normalised) {
    // Back to [0, 1]: x * std + mean per band.
    const auto& mean = config.augment.mean();
    const auto& std = config.augment.std();
    std::vector<torch::Tensor> bands;
    for (int64_t b = 0; b < normalised.size(1); ++b) {
      const double m = mean[mean.size() == 1 ? 0 : b], s = std[std.size() == 1 ? 0 : b];
      bands.push_back(normalised.select(1, b) * s + m);
    }
    return torch::stack(bands, 1);
  };
  const int64_t bands = originals.size(1) >= 3 ? 3 : 1;
  std::ostringstream html;
  html << "<p>Top row: the first images as read (resampled to " << config.augment.size() << " px"
       << (config.augment.window() == "none" ? "" : ", first window")
       << "); below: two augmented views of each, as pretraining sees them (first " << bands
       << (bands == 1 ? " band" : " bands") << ").</p>\n"
       << image_grid({shown(domains::evaluation_view(originals, config.augment)).slice(1, 0, bands),
                      shown(views[0]).slice(1, 0, bands), shown(views[1]).slice(1, 0, bands)},
                     "augmented views");
  return html.str();
}

/// The trained ViT's last-block attention over the first images (from the class token, else
/// averaged over queries), in red over the image: where the encoder looks without labels.
std::string attention_section(const RunConfig& config, RunLog& log) {
  if (!fs::exists(RunDir(config.run.dir()).checkpoint())) return not_run("pretrain");
  const auto dataset = open_dataset(config, true, log);
  const auto method =
      load_method(config, EncoderSource{}, dataset->channels() / config.augment.frames(), log);
  auto* vit = dynamic_cast<methods::ViTImpl*>(method->encoder().get());
  if (!vit) return "<p class=\"missing\">The encoder has no attention to show.</p>\n";
  const auto originals = first_frame(config, first_images(config, *dataset));
  torch::NoGradGuard no_grad;
  vit->eval();
  const auto device = torch::Device(config.run.device());
  const auto images = domains::evaluation_view(originals.to(device), config.augment);
  namespace F = torch::nn::functional;
  const int64_t size = config.augment.size();
  auto heat = F::interpolate(vit->attention_map(images).cpu().unsqueeze(1),
                             F::InterpolateFuncOptions()
                                 .size(std::vector<int64_t>{size, size})
                                 .mode(torch::kBilinear)
                                 .align_corners(false));
  // Each map stretched to [0, 1] on its own: the pattern matters, not the scale.
  const auto low = heat.amin({1, 2, 3}, true), high = heat.amax({1, 2, 3}, true);
  heat = (heat - low) / (high - low).clamp_min(1e-12);
  // The images as evaluation sees them (first window) in [0, 1]: RGB as is, other bands as gray.
  auto plain = config.augment;
  const auto visible =
      domains::evaluation_view(originals, plain.mean({0.0}).std({1.0})).clamp(0, 1);
  const auto base = visible.size(1) == 3 ? visible : visible.mean(1, true).expand({-1, 3, -1, -1});
  const auto red = torch::tensor({1.f, 0.f, 0.f}).view({1, 3, 1, 1});
  const auto overlay = base * 0.5 + heat * red * 0.5;
  // Also as PNG files, for a person to open one by one.
  const std::string dir = RunDir(config.run.dir()).attention();
  fs::create_directories(dir);
  for (int64_t i = 0; i < overlay.size(0); ++i) {
    const std::string path = dir + "/" + std::to_string(i) + ".png";
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << io::encode_png(torch::cat({base[i], overlay[i]}, 2) * 255);
    if (!out) throw InputError(path + ": cannot write");
  }
  return "<p>Top row: the first images; below: the last block's attention " +
         std::string(vit->options().class_token() ? "from the class token"
                                                  : "averaged over tokens") +
         " (red, each map scaled to its own range; also in " + dir + "/).</p>\n" +
         image_grid({base, overlay}, "attention maps");
}

}  // namespace

std::string write_report(const RunConfig& config, RunLog& log) {
  const std::string dir = config.run.dir();
  std::ostringstream html;
  html << "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>pretext run "
       << xml_escape(dir) << "</title>\n<style>\n"
       << "body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}\n"
       << "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;"
          "padding:3px 8px;text-align:right}\n"
       << ".confusion td.hit{background:#dfe}.missing{color:#888}.row{display:flex;"
          "flex-wrap:wrap;gap:1em}\n"
       << "img.pixels{image-rendering:pixelated}pre{background:#f6f6f6;padding:1em;"
          "overflow:auto}\n</style></head><body>\n"
       << "<h1>pretext run " << xml_escape(dir) << "</h1>\n<p>" << xml_escape(config.method_name)
       << " on " << xml_escape(config.backbone_name) << ", seed " << config.run.seed() << ".</p>\n"
       << "<h2>Pretraining</h2>\n"
       << training_section(dir) << "<h2>Augmented views</h2>\n"
       << views_section(config, log)
       << (config.backbone_name == "vit" ? "<h2>Attention</h2>\n" + attention_section(config, log)
                                         : "")
       << "<h2>k-NN</h2>\n"
       << knn_section(dir) << "<h2>Linear probe</h2>\n"
       << probe_section(dir) << "<h2>Few-label fine-tuning</h2>\n"
       << finetune_section(dir) << "<h2>Config</h2>\n<pre>"
       << xml_escape(config.file->resolved_yaml()) << "</pre>\n"
       << "</body></html>\n";
  const std::string path = RunDir(dir).report();
  std::ofstream out(path, std::ios::trunc);
  out << html.str();
  if (!out) throw InputError(path + ": cannot write");
  return path;
}

}  // namespace pretext::pipelines
