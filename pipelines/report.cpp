#include "pipelines/report.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "base/errors.h"
#include "pipelines/checkpoint.h"
#include "pipelines/plot.h"
#include "pipelines/results.h"
#include "pipelines/run_dir.h"
#include "pipelines/training_metrics.h"

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
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string not_run(const std::string& command) {
  return "<p class=\"missing\">Not run yet: <code>pretext " + command +
         " --config ...</code></p>\n";
}

/// Loss and learning rate against the step, from metrics.csv.
std::string training_section(const std::string& dir) {
  Series loss{"loss", {}, {}}, lr{"learning rate", {}, {}};
  std::vector<double> rates;
  for (const auto& row : read_training_rows(RunDir(dir).metrics())) {
    const auto step = static_cast<double>(row.step);
    loss.x.push_back(step);
    loss.y.push_back(row.loss);
    lr.x.push_back(step);
    lr.y.push_back(row.lr);
    rates.push_back(row.images_per_s);
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

// The multi-label probe's scores: mAP and F1, then each label's average precision.
std::string multi_label_table(const MultiLabelMetrics& m, const std::vector<std::string>& classes) {
  std::ostringstream html;
  html << "<table><tr><th>mAP</th><th>micro-F1</th><th>macro-F1</th></tr><tr><td>"
       << percent(m.mean_average_precision) << "</td><td>" << percent(m.micro_f1) << "</td><td>"
       << percent(m.macro_f1) << "</td></tr></table>\n<table><tr><th>label</th><th>average "
       << "precision</th></tr>\n";
  for (size_t c = 0; c < m.average_precision.size(); ++c)
    html << "<tr><th>" << xml_escape(c < classes.size() ? classes[c] : "") << "</th><td>"
         << (m.average_precision[c] ? percent(*m.average_precision[c]) : "- (no positive)")
         << "</td></tr>\n";
  html << "</table>\n";
  return html.str();
}

std::string probe_section(const std::string& dir) {
  const auto record = read_record(RunDir(dir).probe_json(), probe_record);
  if (!record) return not_run("probe");
  std::ostringstream html;
  html << "<p>Encoder " << xml_escape(record->encoder) << "; learning rate " << record->lr
       << ", weight decay " << record->weight_decay;
  if (record->val_score)
    html << ", chosen on validation "
         << (record->multi_label ? "mean average precision " : "top-1 ")
         << percent(*record->val_score);
  html << ".</p>\n";
  if (record->multi_label)
    html << multi_label_table(*record->multi_label, record->classes);
  else
    html << "<table><tr>" << kMetricsHeader << "</tr><tr>" << metrics_cells(record->test)
         << "</tr></table>\n";
  if (fs::exists(RunDir(dir).probe_svg())) html << read_text(RunDir(dir).probe_svg());
  if (!record->multi_label) html << confusion_table(record->test, record->classes);
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

/// A PNG of the run directory inline, under its caption.
std::string figure_html(const std::string& png, const Figure& figure, const std::string& alt) {
  return "<p>" + xml_escape(figure.caption) + "</p>\n<img class=\"pixels\" width=\"" +
         std::to_string(figure.width) + "\" src=\"data:image/png;base64," + base64(read_text(png)) +
         "\" alt=\"" + alt + "\">\n";
}

/// What pretraining drew (figures.json and its PNGs): the augmented views, and a ViT's attention
/// when `attention`.
std::string figures_section(const std::string& dir, bool attention) {
  const RunDir run(dir);
  const auto record = read_record(run.figures_json(), figures_record);
  if (!record) return not_run("pretrain");
  if (!attention) return figure_html(run.views_png(), record->views, "augmented views");
  if (!record->attention) return not_run("pretrain");
  return figure_html(run.attention_png(), *record->attention, "attention maps");
}

}  // namespace

std::string write_report(const RunConfig& config) {
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
       << figures_section(dir, false)
       << (config.backbone_name == "vit" ? "<h2>Attention</h2>\n" + figures_section(dir, true) : "")
       << "<h2>k-NN</h2>\n"
       << knn_section(dir) << "<h2>Linear probe</h2>\n"
       << probe_section(dir) << "<h2>Few-label fine-tuning</h2>\n"
       << finetune_section(dir) << "<h2>Config</h2>\n<pre>"
       << xml_escape(config.file->resolved_yaml()) << "</pre>\n"
       << "</body></html>\n";
  const std::string path = RunDir(dir).report();
  write_file(path, html.str());
  return path;
}

void refresh_report(const RunConfig& config, RunLog& log) {
  try {
    log.file_only("report: " + write_report(config));
  } catch (const InputError& e) {
    log.warn(std::string("report.html not updated: ") + e.what());
  }
}

}  // namespace pretext::pipelines
