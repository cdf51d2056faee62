#include "io/dicom.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <tuple>
#include <vector>

#include <dcmtk/dcmdata/dcdeftag.h>
#include <torch/nn/functional.h>
#include <torch/types.h>

#include "base/errors.h"
#include "io/dicom_file.h"

namespace pretext::io {
using namespace dicom;
namespace {

// Identifiers become salted hashes: the salt is drawn per process and never stored, so a hash
// says "same as another file in this run" and nothing else.
uint64_t salted_hash(const std::string& value) {
  static const uint64_t salt = [] {
    std::random_device device;
    return (static_cast<uint64_t>(device()) << 32) ^ device();
  }();
  uint64_t h = 1469598103934665603ULL ^ salt;  // FNV-1a, then a splitmix finaliser
  for (const unsigned char c : value) h = (h ^ c) * 1099511628211ULL;
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

}  // namespace

DicomHeader read_dicom_header(const std::string& path) {
  LoadedFile loaded;
  load(path, loaded);
  DcmDataset& ds = *loaded.dataset;
  DicomHeader h;
  h.path = path;
  h.format = pixel_format(ds, loaded.transfer_syntax);
  h.series_key = salted_hash(text(ds, DCM_SeriesInstanceUID));
  const std::string patient = text(ds, DCM_PatientID);
  h.patient_key = patient.empty() ? 0 : salted_hash(patient);
  if (!ds.tagExists(DCM_PixelData) && !ds.tagExists(DCM_Rows) && !is_image_class(ds)) {
    h.non_image = non_image_kind(ds);
    return h;
  }
  if (!ds.tagExists(DCM_PixelData)) throw InputError(fail(path, kNoPixels));
  check_format(path, h.format);
  h.frames = integer(ds, DCM_NumberOfFrames, 1);
  if (h.frames < 1) throw InputError(fail(path, "NumberOfFrames " + std::to_string(h.frames)));
  if (is_native(loaded.transfer_syntax)) check_native_length(path, ds, h.format, h.frames);
  h.instance_number = integer(ds, DCM_InstanceNumber, 0);
  h.has_position = numbers(ds, DCM_ImagePositionPatient, h.position);
  h.has_orientation = numbers(ds, DCM_ImageOrientationPatient, h.orientation);
  h.spacing_between_slices = number(ds, DCM_SpacingBetweenSlices, 0.0);
  return h;
}

namespace {

double dot(const std::array<double, 3>& a, const std::array<double, 3>& b) {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

std::array<double, 3> slice_normal(const std::array<double, 6>& o) {
  return {o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]};
}

// The shape every file of a series must share; the most common one wins.
std::array<int64_t, 3> shape_of(const DicomHeader& h) {
  return {h.format.rows, h.format.columns, h.format.samples_per_pixel};
}

struct Scanner {
  OnBadFile on_bad;
  DicomScan scan;

  void bad(const std::string& message) {
    if (on_bad == OnBadFile::kFail) throw InputError(message);
    scan.bad_files.push_back({message});
  }

  void add_series(std::vector<DicomHeader> files, const std::vector<const CatalogItem*>& items);
  void order(DicomSeries& series, std::vector<DicomHeader>& files);
};

void Scanner::add_series(std::vector<DicomHeader> files,
                         const std::vector<const CatalogItem*>& items) {
  std::map<std::array<int64_t, 3>, int64_t> shapes;
  for (const auto& h : files) ++shapes[shape_of(h)];
  const auto majority = std::max_element(shapes.begin(), shapes.end(), [](auto& a, auto& b) {
                          return a.second < b.second;
                        })->first;
  std::vector<DicomHeader> kept;
  for (auto& h : files) {
    if (shape_of(h) == majority) {
      kept.push_back(std::move(h));
      continue;
    }
    bad(fail(h.path, std::to_string(h.format.rows) + " x " + std::to_string(h.format.columns) +
                         " x " + std::to_string(h.format.samples_per_pixel) +
                         " samples, the rest of its series is " + std::to_string(majority[0]) +
                         " x " + std::to_string(majority[1]) + " x " +
                         std::to_string(majority[2])));
  }
  DicomSeries series;
  series.format = kept.front().format;
  series.patient_key = kept.front().patient_key;
  // Labels and splits come from the catalog, file by file; a series must not straddle two.
  std::map<std::string, const CatalogItem*> by_path;
  for (const auto* item : items) by_path[item->path] = item;
  const CatalogItem& first = *by_path.at(kept.front().path);
  series.label = first.label;
  series.split = first.split;
  for (const auto& h : kept) {
    const CatalogItem& item = *by_path.at(h.path);
    if (item.label != series.label || item.split != series.split)
      throw InputError(h.path + ": its series also has files labelled '" + series.label +
                       "' in split '" + series.split + "' (e.g. " + first.path +
                       "); a series takes one label and one split");
  }
  std::set<std::string> syntaxes;
  for (const auto& h : kept)
    syntaxes.insert(h.format.transfer_syntax + " (" + h.format.transfer_syntax_name + ")");
  series.transfer_syntaxes.assign(syntaxes.begin(), syntaxes.end());
  order(series, kept);
  scan.files += static_cast<int64_t>(kept.size());
  scan.series.push_back(std::move(series));
}

void Scanner::order(DicomSeries& series, std::vector<DicomHeader>& files) {
  const bool by_position = std::all_of(files.begin(), files.end(), [](const DicomHeader& h) {
    return h.has_position && h.has_orientation && h.frames == 1;
  });
  struct Placed {
    const DicomHeader* header;
    int64_t frame;
    double location;
  };
  std::vector<Placed> placed;
  if (by_position) {
    const auto normal = slice_normal(files.front().orientation);
    for (const auto& h : files) placed.push_back({&h, 0, dot(h.position, normal)});
    series.ordered_by = "position";
  } else {
    std::sort(files.begin(), files.end(), [](const DicomHeader& a, const DicomHeader& b) {
      return std::tie(a.instance_number, a.path) < std::tie(b.instance_number, b.path);
    });
    const bool multi_frame = files.size() == 1 && files.front().frames > 1;
    const double step = files.front().spacing_between_slices > 0
                            ? files.front().spacing_between_slices
                            : files.front().format.slice_thickness;
    int64_t index = 0;
    for (const auto& h : files)
      for (int64_t frame = 0; frame < h.frames; ++frame, ++index)
        placed.push_back({&h, frame, multi_frame ? index * step : static_cast<double>(index)});
    series.ordered_by = multi_frame ? "frame" : "instance";
    if (multi_frame) series.slice_spacing = step;
  }
  // Positions to the micrometre; a series where every position holds the same number of images
  // (cine MR, perfusion CT) keeps them all as phases instead of calling them duplicates.
  const auto position_key = [](double location) { return std::llround(location * 1000); };
  std::map<int64_t, int64_t> per_position;
  for (const auto& p : placed) ++per_position[position_key(p.location)];
  const int64_t repeats = per_position.begin()->second;
  if (by_position && repeats > 1 &&
      std::all_of(per_position.begin(), per_position.end(),
                  [&](const auto& entry) { return entry.second == repeats; })) {
    series.phases = repeats;
    series.ordered_by = "position, then instance";
  }
  std::stable_sort(placed.begin(), placed.end(), [&](const Placed& a, const Placed& b) {
    const auto ka = position_key(a.location), kb = position_key(b.location);
    return ka != kb ? ka < kb : a.header->instance_number < b.header->instance_number;
  });
  std::vector<double> gaps;
  for (size_t i = 0; i < placed.size(); ++i) {
    const auto& p = placed[i];
    const bool same_position =
        !series.slices.empty() &&
        position_key(p.location) == position_key(series.slices.back().location);
    if (by_position && same_position && series.phases > 1) {
      series.slices.push_back({p.header->path, p.frame, p.location});
      continue;
    }
    if (by_position && same_position) {
      ++scan.duplicate_slices;
      bad(fail(p.header->path, "at the same position as " + series.slices.back().path +
                                   " (slice spacing 0): a duplicate slice"));
      continue;
    }
    if (!series.slices.empty()) gaps.push_back(p.location - series.slices.back().location);
    series.slices.push_back({p.header->path, p.frame, p.location});
  }
  if (by_position && !gaps.empty()) {
    std::vector<double> sorted = gaps;
    std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2, sorted.end());
    series.slice_spacing = sorted[sorted.size() / 2];
    for (const double gap : gaps)
      if (gap > 1.5 * series.slice_spacing)
        series.missing_slices += std::lround(gap / series.slice_spacing) - 1;
  }
}

}  // namespace

DicomScan scan_dicom(const std::vector<CatalogItem>& items, OnBadFile on_bad) {
  Scanner scanner{on_bad, {}};
  std::map<uint64_t, std::vector<DicomHeader>> by_series;
  std::map<uint64_t, std::vector<const CatalogItem*>> items_by_series;
  std::set<uint64_t> patients;
  for (const auto& item : items) {
    try {
      DicomHeader header = read_dicom_header(item.path);
      if (!header.is_image()) {
        scanner.scan.non_image_objects.push_back({fail(item.path, header.non_image)});
        continue;
      }
      if (!dicom_decodable(header.format.transfer_syntax)) {
        scanner.bad(fail(item.path, "no decoder here for transfer syntax " +
                                        header.format.transfer_syntax + " (" +
                                        header.format.transfer_syntax_name + ")"));
        continue;
      }
      patients.insert(header.patient_key);
      items_by_series[header.series_key].push_back(&item);
      by_series[header.series_key].push_back(std::move(header));
    } catch (const InputError& error) {
      scanner.bad(error.what());
    }
  }
  for (auto& [key, files] : by_series) scanner.add_series(std::move(files), items_by_series[key]);
  auto& series = scanner.scan.series;
  std::sort(series.begin(), series.end(), [](const DicomSeries& a, const DicomSeries& b) {
    return a.slices.front().path < b.slices.front().path;
  });
  scanner.scan.patients = static_cast<int64_t>(patients.size());
  if (series.empty()) {
    const auto& others = scanner.scan.non_image_objects;
    const auto& bad = scanner.scan.bad_files;
    // One file: its own reason is the whole story.
    if (items.size() == 1 && others.size() + bad.size() == 1)
      throw InputError((others.empty() ? bad : others).front().message);
    throw InputError("no readable DICOM image series among " + std::to_string(items.size()) +
                     " files (" + std::to_string(others.size()) + " non-image objects" +
                     (others.empty() ? "" : ", e.g. " + others.front().message) + "; " +
                     std::to_string(bad.size()) + " bad files" +
                     (bad.empty() ? "" : ", e.g. " + bad.front().message) + ")");
  }
  return std::move(scanner.scan);
}

DicomImage::DicomImage(const std::string& path) {
  const DicomHeader header = read_dicom_header(path);
  if (!header.is_image()) throw InputError(fail(path, header.non_image));
  info_.path = path;
  info_.format = "DICOM";
  info_.width = header.format.columns;
  info_.height = header.format.rows;
  info_.bands.assign(static_cast<size_t>(header.format.samples_per_pixel),
                     BandInfo{"", DataType::kFloat32, std::nullopt});
}

Patch DicomImage::read(const Region& region, const std::vector<int64_t>& bands) {
  if (region.x < 0 || region.y < 0 || region.width <= 0 || region.height <= 0 ||
      region.x + region.width > info_.width || region.y + region.height > info_.height)
    throw InputError(fail(
        info_.path, "window " + std::to_string(region.x) + "," + std::to_string(region.y) + " " +
                        std::to_string(region.width) + "x" + std::to_string(region.height) +
                        " outside the " + std::to_string(info_.width) + "x" +
                        std::to_string(info_.height) + " image"));
  auto pixels = read_dicom_frame(info_.path, 0)
                    .slice(1, region.y, region.y + region.height)
                    .slice(2, region.x, region.x + region.width);
  if (!bands.empty()) {
    std::vector<int64_t> index;
    for (const int64_t b : bands) {
      if (b < 1 || b > static_cast<int64_t>(info_.bands.size()))
        throw InputError(fail(info_.path, "no band " + std::to_string(b)));
      index.push_back(b - 1);
    }
    pixels = pixels.index_select(0, torch::tensor(index));
  }
  const int64_t out_w = region.out_width > 0 ? region.out_width : region.width;
  const int64_t out_h = region.out_height > 0 ? region.out_height : region.height;
  if (out_w != region.width || out_h != region.height)
    pixels = torch::nn::functional::interpolate(pixels.unsqueeze(0),
                                                torch::nn::functional::InterpolateFuncOptions()
                                                    .size(std::vector<int64_t>{out_h, out_w})
                                                    .mode(torch::kBilinear)
                                                    .align_corners(false))
                 .squeeze(0);
  Patch patch;
  patch.pixels = pixels.contiguous();
  patch.source = info_.path;
  patch.region = region;
  return patch;
}

}  // namespace pretext::io
