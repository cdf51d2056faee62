#include "io/dicom.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <tuple>
#include <type_traits>
#include <vector>

// DCMTK wants its configuration header first.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>
#include <gdcmImage.h>
#include <gdcmImageReader.h>
#include <gdcmTrace.h>
#include <torch/nn/functional.h>
#include <torch/types.h>

#include "base/errors.h"

namespace pretext::io {
namespace {

// JPEG 2000 (lossless only, and lossy): DCMTK's free codecs lack it, GDCM decodes it.
const std::set<std::string> kGdcmSyntaxes = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"};
// What DCMTK decodes here: the uncompressed syntaxes (the stream reader handles byte order and
// deflate), RLE, JPEG baseline / extended / lossless (dcmjpeg) and JPEG-LS (dcmjpls).
const std::set<std::string> kDcmtkSyntaxes = {
    "1.2.840.10008.1.2",      "1.2.840.10008.1.2.1",    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.5",    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"};

// Codecs are registered once per process, and DCMTK's and GDCM's own logging is switched off:
// their warnings can quote tag values, and a library never prints on its own here.
void init_dicom() {
  static std::once_flag once;
  std::call_once(once, [] {
    OFLog::configure(OFLogger::OFF_LOG_LEVEL);
    DcmRLEDecoderRegistration::registerCodecs();
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
    gdcm::Trace::SetDebug(false);
    gdcm::Trace::SetWarning(false);
    gdcm::Trace::SetError(false);
  });
}

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

std::string fail(const std::string& path, const std::string& reason) {
  return path + ": DICOM: " + reason;
}

void require_part10(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file)
    throw InputError(fail(path, std::string("cannot open (") + std::strerror(errno) + ")"));
  char head[132] = {};
  file.read(head, sizeof head);
  if (file.gcount() < 132 || std::memcmp(head + 128, "DICM", 4) != 0)
    throw InputError(fail(path,
                          "no 128-byte preamble and \"DICM\" prefix, so no file meta header "
                          "(a bare data set, not a DICOM Part 10 file)"));
}

std::string text(DcmItem& item, const DcmTagKey& tag) {
  OFString value;
  if (item.findAndGetOFStringArray(tag, value).bad()) return "";
  return value.c_str();
}

template <typename T, size_t N>
bool numbers(DcmItem& item, const DcmTagKey& tag, std::array<T, N>& out) {
  for (size_t i = 0; i < N; ++i) {
    Float64 value = 0;
    if (item.findAndGetFloat64(tag, value, static_cast<unsigned long>(i), OFTrue).bad())
      return false;
    out[i] = static_cast<T>(value);
  }
  return true;
}

double number(DcmItem& item, const DcmTagKey& tag, double fallback) {
  Float64 value = 0;
  // searchIntoSub: enhanced multi-frame objects keep rescale and spacing in functional groups.
  return item.findAndGetFloat64(tag, value, 0, OFTrue).good() ? value : fallback;
}

int64_t integer(DcmItem& item, const DcmTagKey& tag, int64_t fallback) {
  Sint32 value = 0;
  if (item.findAndGetSint32(tag, value).good()) return value;
  Uint16 short_value = 0;
  if (item.findAndGetUint16(tag, short_value).good()) return short_value;
  return fallback;
}

void check_transfer_syntax(const std::string& path, const std::string& uid) {
  if (uid.empty()) throw InputError(fail(path, "the file meta header has no TransferSyntaxUID"));
  if (DcmXfer(uid.c_str()).getXfer() == EXS_Unknown)
    throw InputError(fail(path, "unknown transfer syntax " + uid));
}

struct LoadedFile {
  DcmFileFormat file;
  DcmDataset* dataset = nullptr;
  std::string transfer_syntax;
};

// Loads the meta header and data set; element values over 4 KiB (the pixel data) stay in the file
// until asked for.
void load(const std::string& path, LoadedFile& loaded) {
  init_dicom();
  require_part10(path);
  const OFCondition status = loaded.file.loadFile(path.c_str(), EXS_Unknown, EGL_noChange,
                                                  DCM_MaxReadLength, ERM_fileOnly);
  if (status.bad()) {
    // DCMTK cannot parse a data set in a syntax it does not know, and says only that the meta
    // header is missing; the meta header alone tells the real reason.
    DcmMetaInfo meta;
    if (meta.loadFile(path.c_str()).good())
      check_transfer_syntax(path, text(meta, DCM_TransferSyntaxUID));
    throw InputError(fail(path, std::string("cannot parse [DCMTK: ") + status.text() + "]"));
  }
  loaded.dataset = loaded.file.getDataset();
  loaded.transfer_syntax = text(*loaded.file.getMetaInfo(), DCM_TransferSyntaxUID);
  check_transfer_syntax(path, loaded.transfer_syntax);
}

DicomPixelFormat pixel_format(DcmDataset& ds, const std::string& transfer_syntax) {
  DicomPixelFormat f;
  f.modality = text(ds, DCM_Modality);
  f.transfer_syntax = transfer_syntax;
  f.transfer_syntax_name = DcmXfer(transfer_syntax.c_str()).getXferName();
  f.photometric = text(ds, DCM_PhotometricInterpretation);
  f.rows = integer(ds, DCM_Rows, 0);
  f.columns = integer(ds, DCM_Columns, 0);
  f.samples_per_pixel = integer(ds, DCM_SamplesPerPixel, 1);
  f.bits_allocated = integer(ds, DCM_BitsAllocated, 16);
  f.bits_stored = integer(ds, DCM_BitsStored, f.bits_allocated);
  f.is_signed = integer(ds, DCM_PixelRepresentation, 0) == 1;
  f.rescale_slope = number(ds, DCM_RescaleSlope, 1.0);
  f.rescale_intercept = number(ds, DCM_RescaleIntercept, 0.0);
  if (!numbers(ds, DCM_PixelSpacing, f.pixel_spacing)) f.pixel_spacing = {0.0, 0.0};
  f.slice_thickness = number(ds, DCM_SliceThickness, 0.0);
  return f;
}

void check_format(const std::string& path, const DicomPixelFormat& f) {
  const auto bad = [&](const std::string& reason) { throw InputError(fail(path, reason)); };
  if (f.rows <= 0 || f.columns <= 0) bad("image without Rows / Columns");
  if (f.bits_allocated != 8 && f.bits_allocated != 16 && f.bits_allocated != 32)
    bad("BitsAllocated " + std::to_string(f.bits_allocated) + " (pretext reads 8, 16 and 32)");
  if (f.bits_stored < 1 || f.bits_stored > f.bits_allocated)
    bad("BitsStored " + std::to_string(f.bits_stored) + " with BitsAllocated " +
        std::to_string(f.bits_allocated));
  if (f.samples_per_pixel != 1 && f.samples_per_pixel != 3)
    bad("SamplesPerPixel " + std::to_string(f.samples_per_pixel));
  if (f.rescale_slope == 0.0) bad("RescaleSlope 0");
  if (f.pixel_spacing[0] < 0 || f.pixel_spacing[1] < 0 ||
      (f.pixel_spacing[0] == 0) != (f.pixel_spacing[1] == 0))
    bad("PixelSpacing " + std::to_string(f.pixel_spacing[0]) + "\\" +
        std::to_string(f.pixel_spacing[1]) + " (must be two positive values)");
  if (f.photometric == "PALETTE COLOR")
    bad("PALETTE COLOR images are not supported (convert them to RGB)");
}

// One pass from stored values to float: BitsStored mask and sign, MONOCHROME1 inversion, rescale,
// and interleaved or planar samples to [C, H, W]. Up to 16 bits, all of that is folded into a
// table of the 2^BitsStored possible values (16 KiB for 12 bits), so a pixel costs one lookup.
template <typename T>
void convert(const T* in, float* out, const DicomPixelFormat& f, bool planar, bool invert) {
  using Word = std::make_unsigned_t<T>;
  const int64_t channels = f.samples_per_pixel;
  const int64_t pixels = f.rows * f.columns;
  const int64_t bits = f.bits_stored;
  const uint64_t mask = bits >= 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
  const int64_t sign_bit = int64_t{1} << (bits - 1);
  const int64_t low = f.is_signed ? -sign_bit : 0;
  const int64_t high = f.is_signed ? sign_bit - 1 : static_cast<int64_t>(mask);
  const auto value = [&](uint64_t word) {
    int64_t v = static_cast<int64_t>(word & mask);
    if (f.is_signed && (v & sign_bit)) v -= sign_bit * 2;
    if (invert) v = low + high - v;
    return static_cast<float>(static_cast<double>(v) * f.rescale_slope + f.rescale_intercept);
  };
  const auto at = [&](int64_t c, int64_t i) {
    return static_cast<Word>(in[planar ? c * pixels + i : i * channels + c]);
  };
  if constexpr (sizeof(T) <= 2) {
    std::vector<float> table(static_cast<size_t>(mask) + 1);
    for (uint64_t word = 0; word <= mask; ++word) table[word] = value(word);
    for (int64_t c = 0; c < channels; ++c) {
      float* plane = out + c * pixels;
      if (channels == 1) {
        const auto* words = reinterpret_cast<const Word*>(in);
        for (int64_t i = 0; i < pixels; ++i) plane[i] = table[words[i] & mask];
      } else {
        for (int64_t i = 0; i < pixels; ++i) plane[i] = table[at(c, i) & mask];
      }
    }
  } else {
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t i = 0; i < pixels; ++i) out[c * pixels + i] = value(at(c, i));
  }
}

// YCbCr (full range, 8-bit) to RGB, in place on [3, H, W].
void ybr_full_to_rgb(torch::Tensor& planes) {
  const auto y = planes[0].clone(), cb = planes[1] - 128, cr = planes[2] - 128;
  planes[0] = y + 1.402 * cr;
  planes[1] = y - 0.344136 * cb - 0.714136 * cr;
  planes[2] = y + 1.772 * cb;
}

// `out`: where to write (float32, contiguous, [C, H, W]); allocated when undefined.
torch::Tensor to_tensor(const std::string& path, const char* data, const DicomPixelFormat& f,
                        const std::string& photometric, bool planar, torch::Tensor out) {
  if (photometric.rfind("YBR", 0) == 0 && photometric != "YBR_FULL")
    throw InputError(fail(path, "uncompressed " + photometric + " is not supported"));
  const bool invert = photometric == "MONOCHROME1";
  const std::vector<int64_t> shape = {f.samples_per_pixel, f.rows, f.columns};
  if (!out.defined()) out = torch::empty(shape, torch::kFloat32);
  if (out.sizes() != shape || out.scalar_type() != torch::kFloat32 || !out.is_contiguous())
    throw InputError(fail(path, "the image is " + std::to_string(f.samples_per_pixel) + " x " +
                                    std::to_string(f.rows) + " x " + std::to_string(f.columns) +
                                    ", the destination " + c10::str(out.sizes())));
  float* o = out.data_ptr<float>();
  switch (f.bits_allocated) {
    case 8:
      f.is_signed ? convert(reinterpret_cast<const int8_t*>(data), o, f, planar, invert)
                  : convert(reinterpret_cast<const uint8_t*>(data), o, f, planar, invert);
      break;
    case 16:
      f.is_signed ? convert(reinterpret_cast<const int16_t*>(data), o, f, planar, invert)
                  : convert(reinterpret_cast<const uint16_t*>(data), o, f, planar, invert);
      break;
    default:
      f.is_signed ? convert(reinterpret_cast<const int32_t*>(data), o, f, planar, invert)
                  : convert(reinterpret_cast<const uint32_t*>(data), o, f, planar, invert);
  }
  if (photometric == "YBR_FULL" && f.samples_per_pixel == 3) ybr_full_to_rgb(out);
  return out;
}

int64_t frame_bytes(const DicomPixelFormat& f) {
  return f.rows * f.columns * f.samples_per_pixel * (f.bits_allocated / 8);
}

torch::Tensor read_with_gdcm(const std::string& path, const DicomPixelFormat& f, int64_t frame,
                             torch::Tensor out) {
  gdcm::ImageReader reader;
  reader.SetFileName(path.c_str());
  if (!reader.Read()) throw InputError(fail(path, "GDCM cannot read the JPEG 2000 pixel data"));
  const gdcm::Image& image = reader.GetImage();
  std::vector<char> buffer(image.GetBufferLength());
  const int64_t size = frame_bytes(f);
  if (static_cast<int64_t>(buffer.size()) < (frame + 1) * size)
    throw InputError(fail(path, "GDCM decoded " + std::to_string(buffer.size()) + " bytes, frame " +
                                    std::to_string(frame) + " needs " +
                                    std::to_string((frame + 1) * size)));
  if (!image.GetBuffer(buffer.data()))
    throw InputError(fail(path, "GDCM cannot decode the JPEG 2000 pixel data"));
  const char* photometric =
      gdcm::PhotometricInterpretation::GetPIString(image.GetPhotometricInterpretation().GetType());
  return to_tensor(path, buffer.data() + frame * size, f, photometric ? photometric : "",
                   image.GetPlanarConfiguration() == 1, std::move(out));
}

}  // namespace

bool dicom_decodable(const std::string& transfer_syntax) {
  return kDcmtkSyntaxes.count(transfer_syntax) || kGdcmSyntaxes.count(transfer_syntax);
}

DicomHeader read_dicom_header(const std::string& path) {
  LoadedFile loaded;
  load(path, loaded);
  DcmDataset& ds = *loaded.dataset;
  DicomHeader h;
  h.path = path;
  h.format = pixel_format(ds, loaded.transfer_syntax);
  h.is_image = ds.tagExists(DCM_PixelData) || ds.tagExists(DCM_Rows);
  h.series_key = salted_hash(text(ds, DCM_SeriesInstanceUID));
  h.patient_key = salted_hash(text(ds, DCM_PatientID));
  if (!h.is_image) return h;
  if (!ds.tagExists(DCM_PixelData)) throw InputError(fail(path, "image without pixel data"));
  check_format(path, h.format);
  h.frames = integer(ds, DCM_NumberOfFrames, 1);
  if (h.frames < 1) throw InputError(fail(path, "NumberOfFrames " + std::to_string(h.frames)));
  h.instance_number = integer(ds, DCM_InstanceNumber, 0);
  h.has_position = numbers(ds, DCM_ImagePositionPatient, h.position);
  h.has_orientation = numbers(ds, DCM_ImageOrientationPatient, h.orientation);
  h.spacing_between_slices = number(ds, DCM_SpacingBetweenSlices, 0.0);
  return h;
}

torch::Tensor read_dicom_frame(const std::string& path, int64_t frame, torch::Tensor out) {
  LoadedFile loaded;
  load(path, loaded);
  DcmDataset& ds = *loaded.dataset;
  const auto f = pixel_format(ds, loaded.transfer_syntax);
  check_format(path, f);
  const int64_t frames = integer(ds, DCM_NumberOfFrames, 1);
  if (frame < 0 || frame >= frames)
    throw InputError(
        fail(path, "frame " + std::to_string(frame) + " of " + std::to_string(frames)));
  if (!dicom_decodable(loaded.transfer_syntax))
    throw InputError(fail(path, "no decoder here for transfer syntax " + loaded.transfer_syntax +
                                    " (" + f.transfer_syntax_name + ")"));
  if (kGdcmSyntaxes.count(loaded.transfer_syntax))
    return read_with_gdcm(path, f, frame, std::move(out));

  DcmElement* element = nullptr;
  if (ds.findAndGetElement(DCM_PixelData, element).bad() || element == nullptr)
    throw InputError(fail(path, "image without pixel data"));
  auto* pixel_data = OFstatic_cast(DcmPixelData*, element);
  const int64_t size = frame_bytes(f);
  // Not zero-filled: the decoder writes every byte, and clearing half a MiB per slice shows.
  const int64_t buffer_size = size + (size & 1);
  std::unique_ptr<char[]> buffer(new char[static_cast<size_t>(buffer_size)]);
  Uint32 start_fragment = 0;
  OFString color_model;
  const OFCondition status =
      pixel_data->getUncompressedFrame(&ds, static_cast<Uint32>(frame), start_fragment,
                                       buffer.get(), static_cast<Uint32>(buffer_size), color_model);
  if (status.bad())
    throw InputError(fail(path, "cannot decode frame " + std::to_string(frame) + " (" +
                                    f.transfer_syntax_name + ") [DCMTK: " + status.text() + "]"));
  // Decoders may change the colour model (JPEG YCbCr comes back as RGB) and say so here; the
  // planar configuration is the data set's after decoding.
  const std::string photometric = color_model.empty() ? f.photometric : color_model.c_str();
  return to_tensor(path, buffer.get(), f, photometric, integer(ds, DCM_PlanarConfiguration, 0) == 1,
                   std::move(out));
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
      if (!header.is_image) {
        ++scanner.scan.non_image_objects;
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
  if (series.empty())
    throw InputError(
        "no readable DICOM image series among " + std::to_string(items.size()) + " files (" +
        std::to_string(scanner.scan.non_image_objects) + " non-image objects, " +
        std::to_string(scanner.scan.bad_files.size()) + " bad files" +
        (scanner.scan.bad_files.empty() ? "" : ", e.g. " + scanner.scan.bad_files.front().message) +
        ")");
  return std::move(scanner.scan);
}

DicomImage::DicomImage(const std::string& path) {
  const DicomHeader header = read_dicom_header(path);
  if (!header.is_image)
    throw InputError(fail(path, "not an image (a structured report, plan or presentation state)"));
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
