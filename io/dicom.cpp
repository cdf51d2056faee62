#include "io/dicom.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <tuple>
#include <type_traits>
#include <vector>

#include <unistd.h>

// DCMTK wants its configuration header first.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dccodec.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfcache.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>
#include <gdcmImage.h>
#include <gdcmSequenceOfFragments.h>
#include <gdcmTrace.h>
#include <torch/nn/functional.h>
#include <torch/types.h>

#include "base/errors.h"
#include "io/jpeg2000.h"

namespace pretext::io {
namespace {

// JPEG 2000 (lossless only, and lossy): DCMTK's free codecs lack it, OpenJPEG decodes it (GDCM
// gets a second try at whatever DCMTK's codecs refuse).
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
    // Some files say explicit VR and are implicit (pydicom reads them with a warning).
    dcmAcceptUnexpectedImplicitEncoding.set(OFTrue);
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

std::string dcmtk_words(const OFCondition& status) {
  return std::string("[DCMTK: ") + status.text() + "]";
}

// Why a file could not be parsed or read: "truncated" when DCMTK's stream ended (or stopped making
// sense) before the data set did; files cut short in copying end that way.
std::string parse_failure(const OFCondition& status) {
  const bool ended = status == EC_StreamNotifyClient || status == EC_InvalidStream ||
                     status == EC_PrematureSequDelimitationItem;
  return (ended ? "truncated: the data set runs past the end of the file " : "cannot parse ") +
         dcmtk_words(status);
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

// A 16-bit value whose VR is US or SS as the pixel representation says (PixelPaddingValue, the
// LUT descriptor's first mapped value); files disagree on the VR, the pixel representation wins.
std::optional<int64_t> pixel_value(DcmItem& item, const DcmTagKey& tag, bool is_signed,
                                   unsigned long position = 0) {
  Uint16 word = 0;
  Sint16 signed_word = 0;
  if (item.findAndGetUint16(tag, word, position).bad()) {
    if (item.findAndGetSint16(tag, signed_word, position).bad()) return std::nullopt;
    word = static_cast<Uint16>(signed_word);
  }
  return is_signed ? static_cast<int64_t>(static_cast<int16_t>(word)) : word;
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
    throw InputError(fail(path, parse_failure(status)));
  }
  loaded.dataset = loaded.file.getDataset();
  loaded.transfer_syntax = text(*loaded.file.getMetaInfo(), DCM_TransferSyntaxUID);
  check_transfer_syntax(path, loaded.transfer_syntax);
}

// What an object without pixel data is, from its SOP class (and modality), for messages.
std::string non_image_kind(DcmDataset& ds) {
  const std::string sop_class = text(ds, DCM_SOPClassUID);
  const std::string modality = text(ds, DCM_Modality);
  const char* found = sop_class.empty() ? nullptr : dcmFindNameOfUID(sop_class.c_str(), nullptr);
  const std::string name = found ? found : "";
  const auto is = [&](const char* part, std::initializer_list<const char*> modalities) {
    return name.find(part) != std::string::npos ||
           std::any_of(modalities.begin(), modalities.end(),
                       [&](const char* m) { return modality == m; });
  };
  std::string kind = "no pixel data: not an image";
  if (is("SR", {"SR"}) || is("KeyObjectSelection", {"KO"}))
    kind = "a structured report";
  else if (is("RTPlan", {"RTPLAN"}) || is("RTIonPlan", {}))
    kind = "an RT plan";
  else if (is("RTStructureSet", {"RTSTRUCT"}))
    kind = "an RT structure set";
  else if (is("TreatmentRecord", {"RTRECORD"}))
    kind = "an RT treatment record";
  else if (is("Waveform", {"ECG", "HD", "EPS", "RESP", "AU"}))
    kind = "a waveform";
  else if (is("PresentationState", {"PR"}))
    kind = "a presentation state";
  else if (is("EncapsulatedPDF", {"DOC"}))
    kind = "an encapsulated document";
  else if (is("Registration", {"REG"}))
    kind = "a spatial registration";
  const std::string sop = found ? name : sop_class.empty() ? "no SOP class" : "SOP class " + sop_class;
  return kind + " (" + sop + (kind.rfind("no pixel data", 0) == 0 ? ")" : "), not an image");
}

// An image storage SOP class: such a file without pixel data lost them (or never got them).
bool is_image_class(DcmDataset& ds) {
  const std::string sop_class = text(ds, DCM_SOPClassUID);
  return !sop_class.empty() && dcmIsaStorageSOPClassUID(sop_class.c_str(), ESSC_Image);
}
const char* const kNoPixels =
    "image without pixel data (truncated, or an export that left the pixels out)";

bool has_lut(DcmDataset& ds) {
  DcmItem* item = nullptr;
  return ds.findAndGetSequenceItem(DCM_ModalityLUTSequence, item, 0).good() && item != nullptr;
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
  f.has_modality_lut = has_lut(ds);
  f.padding_value = pixel_value(ds, DCM_PixelPaddingValue, f.is_signed);
  if (f.padding_value) f.padding_limit = pixel_value(ds, DCM_PixelPaddingRangeLimit, f.is_signed);
  if (!numbers(ds, DCM_PixelSpacing, f.pixel_spacing)) f.pixel_spacing = {0.0, 0.0};
  f.slice_thickness = number(ds, DCM_SliceThickness, 0.0);
  return f;
}

// Photometric interpretations as stored that pretext reads, and what each becomes.
bool is_ybr_full(const std::string& photometric) {
  return photometric == "YBR_FULL" || photometric == "YBR_FULL_422";
}

void check_format(const std::string& path, const DicomPixelFormat& f) {
  const auto bad = [&](const std::string& reason) { throw InputError(fail(path, reason)); };
  if (f.rows <= 0 || f.columns <= 0) bad("image without Rows / Columns");
  if (f.bits_allocated != 1 && f.bits_allocated != 8 && f.bits_allocated != 16 &&
      f.bits_allocated != 32)
    bad("BitsAllocated " + std::to_string(f.bits_allocated) + " (pretext reads 1, 8, 16 and 32)");
  if (f.bits_stored < 1 || f.bits_stored > f.bits_allocated)
    bad("BitsStored " + std::to_string(f.bits_stored) + " with BitsAllocated " +
        std::to_string(f.bits_allocated));
  if (f.samples_per_pixel != 1 && f.samples_per_pixel != 3)
    bad("SamplesPerPixel " + std::to_string(f.samples_per_pixel));
  if (f.bits_allocated == 1 && f.samples_per_pixel != 1)
    bad("BitsAllocated 1 with " + std::to_string(f.samples_per_pixel) + " samples per pixel");
  if (f.rescale_slope == 0.0) bad("RescaleSlope 0");
  if (f.pixel_spacing[0] < 0 || f.pixel_spacing[1] < 0 ||
      (f.pixel_spacing[0] == 0) != (f.pixel_spacing[1] == 0))
    bad("PixelSpacing " + std::to_string(f.pixel_spacing[0]) + "\\" +
        std::to_string(f.pixel_spacing[1]) + " (must be two positive values)");
  const std::string& p = f.photometric;
  if (p == "PALETTE COLOR") bad("PALETTE COLOR images are not supported (convert them to RGB)");
  const bool colour = p == "RGB" || is_ybr_full(p) || p == "YBR_RCT" || p == "YBR_ICT" ||
                      p == "YBR_PARTIAL_420";
  const bool grey = p == "MONOCHROME1" || p == "MONOCHROME2" || p.empty();
  if (!colour && !grey)
    bad("photometric interpretation " + p + " is not read (MONOCHROME1/2, RGB, YBR_FULL(_422), "
        "YBR_RCT / YBR_ICT and YBR_PARTIAL_420 of compressed data are)");
  if ((colour ? 3 : 1) != f.samples_per_pixel)
    bad(p + " with " + std::to_string(f.samples_per_pixel) + " samples per pixel");
  if (p == "YBR_FULL_422" && f.columns % 2 != 0)
    bad("YBR_FULL_422 with an odd number of columns (" + std::to_string(f.columns) + ")");
}

// The uncompressed syntaxes: pixel data as stored, little or big endian, or deflated.
bool is_native(const std::string& transfer_syntax) {
  return transfer_syntax == "1.2.840.10008.1.2" || transfer_syntax == "1.2.840.10008.1.2.1" ||
         transfer_syntax == "1.2.840.10008.1.2.2" || transfer_syntax == "1.2.840.10008.1.2.1.99";
}

// A Modality LUT (PS3.3 C.11.1): stored values from `first` on map to `entries`, values below to
// the first entry, values past the end to the last.
struct ModalityLut {
  std::vector<double> entries;
  int64_t first = 0;
  double at(int64_t stored) const {
    const int64_t last = static_cast<int64_t>(entries.size()) - 1;
    return entries[static_cast<size_t>(std::clamp<int64_t>(stored - first, 0, last))];
  }
};

std::optional<ModalityLut> modality_lut(const std::string& path, DcmDataset& ds,
                                        const DicomPixelFormat& f) {
  DcmItem* item = nullptr;
  if (ds.findAndGetSequenceItem(DCM_ModalityLUTSequence, item, 0).bad() || item == nullptr)
    return std::nullopt;
  const auto bad = [&](const std::string& reason) {
    return InputError(fail(path, "Modality LUT Sequence: " + reason));
  };
  std::array<int64_t, 3> descriptor{};
  for (unsigned long i = 0; i < 3; ++i) {
    const auto value = pixel_value(*item, DCM_LUTDescriptor, i == 1 && f.is_signed, i);
    if (!value) throw bad("LUTDescriptor has no value " + std::to_string(i + 1));
    descriptor[i] = *value;
  }
  const int64_t entries = descriptor[0] == 0 ? 65536 : descriptor[0];
  const int64_t depth = descriptor[2];
  if (depth < 1 || depth > 16) throw bad("LUTDescriptor says " + std::to_string(depth) + " bits");
  const Uint16* data = nullptr;
  unsigned long count = 0;
  if (item->findAndGetUint16Array(DCM_LUTData, data, &count).bad() || data == nullptr)
    throw bad("no LUTData");
  if (static_cast<int64_t>(count) < entries)
    throw bad("LUTData holds " + std::to_string(count) + " entries, LUTDescriptor says " +
              std::to_string(entries));
  ModalityLut lut;
  lut.first = descriptor[1];
  const unsigned mask = (1u << depth) - 1;
  for (int64_t i = 0; i < entries; ++i) lut.entries.push_back(data[i] & mask);
  return lut;
}

// Stored word -> value: BitsStored mask and sign, Modality LUT or rescale, MONOCHROME1 inversion
// (over the range the stored values map to) and the fill value of padding pixels.
class ValueMap {
 public:
  ValueMap(const DicomPixelFormat& f, const ModalityLut* lut, bool invert)
      : f_(f), lut_(lut), invert_(invert) {
    const int64_t bits = f.bits_stored;
    mask_ = bits >= 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
    sign_bit_ = int64_t{1} << (bits - 1);
    const int64_t low = f.is_signed ? -sign_bit_ : 0;
    const int64_t high = f.is_signed ? sign_bit_ - 1 : static_cast<int64_t>(mask_);
    double out_low = std::min(mapped(low), mapped(high));
    double out_high = std::max(mapped(low), mapped(high));
    if (lut) {  // a LUT need not be monotonic: its extremes over the entries the range reaches
      const int64_t last = static_cast<int64_t>(lut->entries.size()) - 1;
      for (int64_t i = std::clamp<int64_t>(low - lut->first, 0, last);
           i <= std::clamp<int64_t>(high - lut->first, 0, last); ++i) {
        out_low = std::min(out_low, lut->entries[static_cast<size_t>(i)]);
        out_high = std::max(out_high, lut->entries[static_cast<size_t>(i)]);
      }
    }
    flip_ = out_low + out_high;
    fill_ = f.modality == "CT" ? kAirHounsfield : out_low;
    if (f.padding_value) {
      const int64_t limit = f.padding_limit.value_or(*f.padding_value);
      padding_ = {std::min(*f.padding_value, limit), std::max(*f.padding_value, limit)};
    }
  }
  int64_t stored(uint64_t word) const {
    int64_t v = static_cast<int64_t>(word & mask_);
    if (f_.is_signed && (v & sign_bit_)) v -= sign_bit_ * 2;
    return v;
  }
  bool padding(int64_t v) const { return padding_ && v >= padding_->first && v <= padding_->second; }
  float value(int64_t v) const {
    if (padding(v)) return static_cast<float>(fill_);
    const double m = mapped(v);
    return static_cast<float>(invert_ ? flip_ - m : m);
  }
  bool has_padding() const { return padding_.has_value(); }
  uint64_t mask() const { return mask_; }

 private:
  static constexpr double kAirHounsfield = -1000.0;
  double mapped(int64_t v) const {
    return lut_ ? lut_->at(v) : static_cast<double>(v) * f_.rescale_slope + f_.rescale_intercept;
  }
  const DicomPixelFormat& f_;
  const ModalityLut* lut_;
  bool invert_;
  uint64_t mask_ = 0;
  int64_t sign_bit_ = 0;
  double flip_ = 0.0, fill_ = 0.0;
  std::optional<std::pair<int64_t, int64_t>> padding_;
};

// One pass from stored values to float, [C, H, W] from interleaved or planar samples, and the
// validity of each pixel when the file declares padding. Up to 16 bits, the value map is folded
// into a table of the 2^BitsStored possible values (16 KiB for 12 bits), so a pixel costs one
// lookup.
template <typename T>
void convert(const T* in, float* out, bool* valid, const DicomPixelFormat& f, bool planar,
             const ValueMap& map) {
  using Word = std::make_unsigned_t<T>;
  const int64_t channels = f.samples_per_pixel;
  const int64_t pixels = f.rows * f.columns;
  const uint64_t mask = map.mask();
  const auto at = [&](int64_t c, int64_t i) {
    return static_cast<Word>(in[planar ? c * pixels + i : i * channels + c]);
  };
  if constexpr (sizeof(T) <= 2) {
    std::vector<float> table(static_cast<size_t>(mask) + 1);
    std::vector<uint8_t> real(valid ? table.size() : 0);
    for (uint64_t word = 0; word <= mask; ++word) {
      table[word] = map.value(map.stored(word));
      if (valid) real[word] = !map.padding(map.stored(word));
    }
    for (int64_t c = 0; c < channels; ++c) {
      float* plane = out + c * pixels;
      if (channels == 1) {
        const auto* words = reinterpret_cast<const Word*>(in);
        for (int64_t i = 0; i < pixels; ++i) plane[i] = table[words[i] & mask];
        if (valid)
          for (int64_t i = 0; i < pixels; ++i) valid[i] = real[words[i] & mask];
      } else {
        for (int64_t i = 0; i < pixels; ++i) plane[i] = table[at(c, i) & mask];
      }
    }
  } else {
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t i = 0; i < pixels; ++i) out[c * pixels + i] = map.value(map.stored(at(c, i)));
    if (valid && channels == 1)
      for (int64_t i = 0; i < pixels; ++i) valid[i] = !map.padding(map.stored(at(0, i)));
  }
}

// YBR_FULL to RGB (PS3.3 C.7.6.3.1.2) in place on [3, H, W], rounded half up and clamped to the
// range `bits` hold, as pydicom's conversion does; chroma is centred on half that range.
void ybr_full_to_rgb(torch::Tensor& planes, int64_t bits) {
  const double centre = std::ldexp(1.0, static_cast<int>(bits) - 1);
  const double top = std::ldexp(1.0, static_cast<int>(bits)) - 1;
  const auto y = planes[0].clone(), cb = planes[1] - centre, cr = planes[2] - centre;
  planes[0] = y + 1.402 * cr;
  planes[1] = y - (0.114 * 1.772 / 0.587) * cb - (0.299 * 1.402 / 0.587) * cr;
  planes[2] = y + 1.772 * cb;
  planes.add_(0.5).floor_().clamp_(0, top);
}

// One frame's stored samples in host byte order, and how to read them.
struct StoredFrame {
  std::vector<char> bytes;
  DicomPixelFormat format;  ///< of `bytes`: 1-bit masks arrive unpacked, one byte a pixel
  std::string photometric;  ///< after decoding (codecs may turn YBR into RGB)
  bool planar = false;
  bool subsampled = false;  ///< YBR_FULL_422 as stored: Y1 Y2 Cb Cr for each pair of pixels
};

// Bytes of one frame of 8, 16 or 32 bits a sample; YBR_FULL_422 as stored has two samples a pixel.
int64_t frame_bytes(const DicomPixelFormat& f, bool subsampled = false) {
  return f.rows * f.columns * (subsampled ? 2 : f.samples_per_pixel) * (f.bits_allocated / 8);
}

// Y1 Y2 Cb Cr -> Y1 Cb Cr Y2 Cb Cr: two pixels share their chroma (PS3.3 C.7.6.3.1.2).
std::vector<char> expand_422(const std::vector<char>& in, int64_t pixels, int64_t sample_bytes) {
  std::vector<char> out(static_cast<size_t>(pixels * 3 * sample_bytes));
  const auto sample = [&](const std::vector<char>& v, int64_t i) { return v.data() + i * sample_bytes; };
  for (int64_t pair = 0; pair < pixels / 2; ++pair) {
    const int64_t src = pair * 4, dst = pair * 6;
    const size_t n = static_cast<size_t>(sample_bytes);
    std::memcpy(out.data() + (dst + 0) * sample_bytes, sample(in, src + 0), n);  // Y1
    std::memcpy(out.data() + (dst + 3) * sample_bytes, sample(in, src + 1), n);  // Y2
    for (const int64_t d : {dst + 1, dst + 4}) std::memcpy(out.data() + d * sample_bytes, sample(in, src + 2), n);
    for (const int64_t d : {dst + 2, dst + 5}) std::memcpy(out.data() + d * sample_bytes, sample(in, src + 3), n);
  }
  return out;
}

// `out`: where to write (float32, contiguous, [C, H, W]); allocated when undefined.
DicomFrame to_frame(const std::string& path, StoredFrame stored, const ModalityLut* lut,
                    torch::Tensor out) {
  const DicomPixelFormat& f = stored.format;
  const std::string& photometric = stored.photometric;
  // Partial-range YCbCr comes only from compressed data whose decoder converts it; left as it is,
  // it would be silently wrong colours.
  if (photometric.rfind("YBR_PARTIAL", 0) == 0)
    throw InputError(fail(path, photometric + (stored.subsampled ? " uncompressed" : " as decoded") +
                                    " is not read"));
  if (stored.subsampled) {
    stored.bytes = expand_422(stored.bytes, f.rows * f.columns, f.bits_allocated / 8);
    stored.planar = false;
  }
  const std::vector<int64_t> shape = {f.samples_per_pixel, f.rows, f.columns};
  if (!out.defined()) out = torch::empty(shape, torch::kFloat32);
  if (out.sizes() != shape || out.scalar_type() != torch::kFloat32 || !out.is_contiguous())
    throw InputError(fail(path, "the image is " + std::to_string(f.samples_per_pixel) + " x " +
                                    std::to_string(f.rows) + " x " + std::to_string(f.columns) +
                                    ", the destination " + c10::str(out.sizes())));
  DicomFrame frame{out, {}};
  const ValueMap map(f, lut, photometric == "MONOCHROME1");
  if (map.has_padding() && f.samples_per_pixel == 1)
    frame.valid = torch::empty({f.rows, f.columns}, torch::kBool);
  bool* valid = frame.valid.defined() ? frame.valid.data_ptr<bool>() : nullptr;
  float* o = out.data_ptr<float>();
  const char* data = stored.bytes.data();
  const bool planar = stored.planar;
  switch (f.bits_allocated) {
    case 8:
      f.is_signed ? convert(reinterpret_cast<const int8_t*>(data), o, valid, f, planar, map)
                  : convert(reinterpret_cast<const uint8_t*>(data), o, valid, f, planar, map);
      break;
    case 16:
      f.is_signed ? convert(reinterpret_cast<const int16_t*>(data), o, valid, f, planar, map)
                  : convert(reinterpret_cast<const uint16_t*>(data), o, valid, f, planar, map);
      break;
    default:
      f.is_signed ? convert(reinterpret_cast<const int32_t*>(data), o, valid, f, planar, map)
                  : convert(reinterpret_cast<const uint32_t*>(data), o, valid, f, planar, map);
  }
  if (is_ybr_full(photometric)) ybr_full_to_rgb(out, f.bits_stored);
  return frame;
}

DcmPixelData& pixel_data_of(const std::string& path, DcmDataset& ds) {
  DcmElement* element = nullptr;
  if (ds.findAndGetElement(DCM_PixelData, element).bad() || element == nullptr)
    throw InputError(fail(path, kNoPixels));
  return *OFstatic_cast(DcmPixelData*, element);
}

// Bits of native pixel data all frames need (1-bit data is packed, 8 pixels a byte).
int64_t native_bits(const DicomPixelFormat& f, int64_t frames) {
  const bool subsampled = f.photometric == "YBR_FULL_422";
  return f.bits_allocated == 1 ? frames * f.rows * f.columns
                               : frames * frame_bytes(f, subsampled) * 8;
}

// Native pixel data shorter than its frames need: a truncated or cut-down file.
void check_native_length(const std::string& path, DcmDataset& ds, const DicomPixelFormat& f,
                         int64_t frames) {
  const int64_t need = (native_bits(f, frames) + 7) / 8;
  const int64_t length = pixel_data_of(path, ds).getLength();
  if (length < need)
    throw InputError(fail(path, "truncated: the pixel data holds " + std::to_string(length) +
                                    " bytes, " + std::to_string(frames) + " frame(s) of " +
                                    std::to_string(f.rows) + " x " + std::to_string(f.columns) +
                                    " need " + std::to_string(need)));
}

// DCMTK reads big-endian OW as 16-bit words; samples of 8 or 32 bits need their bytes put back.
void fix_big_endian_words(std::vector<char>& bytes, int64_t bits_allocated) {
  for (size_t i = 0; i + 1 < bytes.size(); i += 2) std::swap(bytes[i], bytes[i + 1]);
  if (bits_allocated == 8) return;  // the stream order is the sample order
  // 32 bits: undoing the word swap leaves big-endian samples; host order is little endian.
  for (size_t i = 0; i + 3 < bytes.size(); i += 4) {
    std::swap(bytes[i], bytes[i + 3]);
    std::swap(bytes[i + 1], bytes[i + 2]);
  }
}

StoredFrame native_frame(const std::string& path, DcmDataset& ds, const DicomPixelFormat& f,
                         const std::string& transfer_syntax, int64_t frame) {
  DcmPixelData& pixels = pixel_data_of(path, ds);
  StoredFrame stored{{}, f, f.photometric, integer(ds, DCM_PlanarConfiguration, 0) == 1,
                     f.photometric == "YBR_FULL_422"};
  const int64_t first_bit = native_bits(f, frame), bits = native_bits(f, 1);
  const int64_t first_byte = first_bit / 8, end_byte = (first_bit + bits + 7) / 8;
  std::vector<char> bytes(static_cast<size_t>(end_byte - first_byte));
  DcmFileCache cache;
  const OFCondition status =
      pixels.getPartialValue(bytes.data(), static_cast<Uint32>(first_byte),
                             static_cast<Uint32>(bytes.size()), &cache);
  if (status.bad())
    throw InputError(fail(path, "frame " + std::to_string(frame) + ": " + parse_failure(status)));
  const bool big_endian = DcmXfer(transfer_syntax.c_str()).getByteOrder() == EBO_BigEndian;
  if (big_endian && pixels.getTag().getEVR() == EVR_OW && f.bits_allocated != 16)
    fix_big_endian_words(bytes, f.bits_allocated);
  if (f.bits_allocated != 1) {
    stored.bytes = std::move(bytes);
    return stored;
  }
  // 1-bit masks: pixel i is bit (i % 8) of its byte, least significant first (PS3.5 8.1.1).
  stored.bytes.resize(static_cast<size_t>(bits));
  for (int64_t i = 0; i < bits; ++i) {
    const int64_t bit = first_bit + i - first_byte * 8;
    stored.bytes[static_cast<size_t>(i)] =
        static_cast<char>((static_cast<unsigned char>(bytes[static_cast<size_t>(bit / 8)]) >>
                           (bit % 8)) & 1);
  }
  stored.format.bits_allocated = 8;
  return stored;
}

// DCMTK's codecs (RLE, JPEG, JPEG-LS); nullopt and `said` filled when they refuse the frame.
std::optional<StoredFrame> dcmtk_frame(const std::string& path, DcmDataset& ds,
                                       const DicomPixelFormat& f, int64_t frame,
                                       std::string& said) {
  DcmPixelData& pixels = pixel_data_of(path, ds);
  const int64_t size = frame_bytes(f);
  // Not zero-filled: the decoder writes every byte, and clearing half a MiB per slice shows.
  StoredFrame stored{std::vector<char>(static_cast<size_t>(size + (size & 1))), f, "", false, false};
  Uint32 start_fragment = 0;
  OFString color_model;
  const OFCondition status = pixels.getUncompressedFrame(
      &ds, static_cast<Uint32>(frame), start_fragment, stored.bytes.data(),
      static_cast<Uint32>(stored.bytes.size()), color_model);
  if (status.bad()) {
    said = dcmtk_words(status);
    return std::nullopt;
  }
  // Decoders may change the colour model (JPEG YCbCr comes back as RGB) and say so here; the
  // planar configuration is the data set's after decoding.
  stored.photometric = color_model.empty() ? f.photometric : color_model.c_str();
  stored.planar = integer(ds, DCM_PlanarConfiguration, 0) == 1;
  return stored;
}

// GDCM reports through a global trace, switched off (init_dicom), and the libraries under it
// (libjpeg, CharLS) print to the process's stderr. GDCM only decodes what DCMTK's codecs refused,
// so those decodes are serialised, with the trace and stderr captured into the words that the
// message quotes (lines naming GDCM's own source files dropped).
std::string with_gdcm_words(const std::function<void()>& attempt) {
  static std::mutex mutex;
  const std::lock_guard<std::mutex> lock(mutex);
  std::ostringstream trace;
  static std::ostream nowhere(nullptr);
  gdcm::Trace::SetErrorStream(trace);
  gdcm::Trace::SetError(true);
  std::fflush(stderr);
  const int saved = dup(2);
  std::FILE* printed = std::tmpfile();
  if (printed && saved >= 0) dup2(fileno(printed), 2);
  attempt();
  std::fflush(stderr);
  if (printed && saved >= 0) dup2(saved, 2);
  if (saved >= 0) close(saved);
  gdcm::Trace::SetError(false);
  gdcm::Trace::SetErrorStream(nowhere);
  std::string text = trace.str();
  if (printed) {
    std::rewind(printed);
    char buffer[512];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, printed)) > 0) text.append(buffer, n);
    std::fclose(printed);
  }
  std::istringstream lines(text);
  std::string line, words;
  while (std::getline(lines, line))
    if (!line.empty() && line.rfind("Error: In ", 0) != 0 && line.rfind("Warning: In ", 0) != 0 &&
        words.find(line) == std::string::npos)
      words += (words.empty() ? "" : "; ") + line;
  return words;
}

// The bytes of frame `frame` of encapsulated pixel data: its fragments (found by item lengths,
// so that bytes inside one that look like a delimiter are just data), joined.
std::vector<uint8_t> frame_bytes_encapsulated(const std::string& path, DcmPixelData& pixels,
                                              const DicomPixelFormat& f, int64_t frames,
                                              int64_t frame) {
  DcmPixelSequence* sequence = nullptr;
  const E_TransferSyntax xfer = DcmXfer(f.transfer_syntax.c_str()).getXfer();
  if (pixels.getEncapsulatedRepresentation(xfer, nullptr, sequence).bad() || sequence == nullptr)
    throw InputError(fail(path, "no encapsulated pixel data for " + f.transfer_syntax_name));
  Uint32 first = 0, end = static_cast<Uint32>(sequence->card());
  const auto start_of = [&](int64_t n, Uint32& item) {
    return DcmCodec::determineStartFragment(static_cast<Uint32>(n), static_cast<Sint32>(frames),
                                            sequence, item);
  };
  if (start_of(frame, first).bad() || (frame + 1 < frames && start_of(frame + 1, end).bad()))
    throw InputError(fail(path, "cannot tell which fragments hold frame " +
                                    std::to_string(frame) + " (no basic offset table)"));
  std::vector<uint8_t> bytes;
  for (Uint32 i = first; i < end; ++i) {
    DcmPixelItem* item = nullptr;
    Uint8* data = nullptr;
    if (sequence->getItem(item, i).bad() || item == nullptr) break;
    const OFCondition status = item->getUint8Array(data);
    if (status.bad()) throw InputError(fail(path, "fragment " + std::to_string(i) + ": " +
                                                      parse_failure(status)));
    if (data) bytes.insert(bytes.end(), data, data + item->getLength());
  }
  return bytes;
}

// JPEG 2000 through OpenJPEG, into the stored layout the rest of the conversion reads.
StoredFrame jpeg2000_frame(const std::string& path, DcmPixelData& pixels,
                           const DicomPixelFormat& f, int64_t frames, int64_t frame) {
  const auto codestream = frame_bytes_encapsulated(path, pixels, f, frames, frame);
  Jpeg2000Image image;
  try {
    image = decode_jpeg2000(codestream.data(), codestream.size());
  } catch (const std::runtime_error& error) {
    throw InputError(fail(path, "cannot decode frame " + std::to_string(frame) + " (" +
                                    f.transfer_syntax_name + ") [" + error.what() + "]"));
  }
  if (image.width != f.columns || image.height != f.rows || image.components != f.samples_per_pixel)
    throw InputError(fail(path, "the JPEG 2000 codestream is " + std::to_string(image.width) +
                                    " x " + std::to_string(image.height) + " x " +
                                    std::to_string(image.components) + ", the header says " +
                                    std::to_string(f.columns) + " x " + std::to_string(f.rows) +
                                    " x " + std::to_string(f.samples_per_pixel)));
  // Each sample as a word of BitsAllocated; sign and BitsStored are the value map's business
  // (an unsigned codestream under PixelRepresentation 1 is read as two's complement there).
  StoredFrame stored{std::vector<char>(static_cast<size_t>(frame_bytes(f))), f, f.photometric,
                     false, false};
  const int64_t n = static_cast<int64_t>(image.samples.size());
  for (int64_t i = 0; i < n; ++i) {
    const int32_t v = image.samples[static_cast<size_t>(i)];
    switch (f.bits_allocated) {
      case 8:
        stored.bytes[static_cast<size_t>(i)] = static_cast<char>(v);
        break;
      case 16: {
        const auto word = static_cast<uint16_t>(v);
        std::memcpy(stored.bytes.data() + 2 * i, &word, 2);
        break;
      }
      default:
        std::memcpy(stored.bytes.data() + 4 * i, &v, 4);
    }
  }
  return stored;
}

// The JPEG syntaxes of DCMTK's dcmjpeg, whose bit-depth scan loops forever on some broken marker
// sequences (a start-of-frame marker turned into TEM, say) instead of failing.
bool is_dcmjpeg(const std::string& transfer_syntax) {
  return transfer_syntax == "1.2.840.10008.1.2.4.50" || transfer_syntax == "1.2.840.10008.1.2.4.51" ||
         transfer_syntax == "1.2.840.10008.1.2.4.57" || transfer_syntax == "1.2.840.10008.1.2.4.70";
}

// Whether a JPEG stream's markers lead from SOI to a frame header (SOF) before any scan: the
// structure every JPEG decoder needs, checked in bounded steps before DCMTK may walk it.
bool jpeg_frame_header_found(const std::vector<uint8_t>& jpeg) {
  const size_t n = jpeg.size();
  if (n < 4 || jpeg[0] != 0xff || jpeg[1] != 0xd8) return false;
  size_t i = 2;
  while (i + 4 <= n) {
    if (jpeg[i] != 0xff) return false;
    const uint8_t marker = jpeg[i + 1];
    if (marker == 0xff) {  // fill byte
      ++i;
      continue;
    }
    const bool sof = marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 &&
                     marker != 0xcc;
    if (sof) return true;
    if (marker == 0xda || marker == 0xd9) return false;  // a scan or the end before any frame
    if (marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {  // standalone markers
      i += 2;
      continue;
    }
    const size_t length = (static_cast<size_t>(jpeg[i + 2]) << 8) | jpeg[i + 3];
    if (length < 2) return false;
    i += 2 + length;
  }
  return false;
}

// GDCM, the second opinion on what DCMTK's codecs refuse, fed the frame's bytes as one fragment
// (as pydicom does); nullopt and `said` filled when it cannot decode them either.
std::optional<StoredFrame> gdcm_frame(const std::string& path, DcmDataset& ds,
                                      const DicomPixelFormat& f, int64_t frames, int64_t frame,
                                      std::string& said) {
  DcmPixelData& pixels = pixel_data_of(path, ds);
  const auto bytes = frame_bytes_encapsulated(path, pixels, f, frames, frame);
  StoredFrame stored{{}, f, f.photometric, integer(ds, DCM_PlanarConfiguration, 0) == 1, false};
  const auto attempt = [&]() -> std::string {
    gdcm::SmartPointer<gdcm::SequenceOfFragments> fragments = new gdcm::SequenceOfFragments;
    gdcm::Fragment fragment;
    fragment.SetByteValue(reinterpret_cast<const char*>(bytes.data()),
                          static_cast<uint32_t>(bytes.size()));
    fragments->AddFragment(fragment);
    gdcm::DataElement element(gdcm::Tag(0x7fe0, 0x0010));
    element.SetValue(*fragments);
    element.SetVLToUndefined();
    gdcm::Image image;
    image.SetNumberOfDimensions(2);
    image.SetDimension(0, static_cast<unsigned int>(f.columns));
    image.SetDimension(1, static_cast<unsigned int>(f.rows));
    image.SetPixelFormat(gdcm::PixelFormat(
        static_cast<unsigned short>(f.samples_per_pixel),
        static_cast<unsigned short>(f.bits_allocated), static_cast<unsigned short>(f.bits_stored),
        static_cast<unsigned short>(f.bits_stored - 1), f.is_signed ? 1 : 0));
    image.SetPhotometricInterpretation(
        gdcm::PhotometricInterpretation::GetPIType(f.photometric.c_str()));
    image.SetPlanarConfiguration(stored.planar ? 1 : 0);
    image.SetTransferSyntax(gdcm::TransferSyntax::GetTSType(f.transfer_syntax.c_str()));
    image.SetDataElement(element);
    const int64_t size = frame_bytes(f);
    std::vector<char> buffer(image.GetBufferLength());
    if (static_cast<int64_t>(buffer.size()) < size)
      return "decoded " + std::to_string(buffer.size()) + " bytes, a frame needs " +
             std::to_string(size);
    if (!image.GetBuffer(buffer.data())) return "cannot decode the pixel data";
    stored.bytes.assign(buffer.begin(), buffer.begin() + size);
    const char* photometric = gdcm::PhotometricInterpretation::GetPIString(
        image.GetPhotometricInterpretation().GetType());
    if (photometric) stored.photometric = photometric;
    stored.planar = image.GetPlanarConfiguration() == 1;
    return "";
  };
  const std::string words = with_gdcm_words([&] { said = attempt(); });
  if (said.empty()) return stored;
  said = "[GDCM: " + said + (words.empty() ? "" : " (" + words + ")") + "]";
  return std::nullopt;
}

// What the decoders hand back for a J2K multi-component transform is RGB already.
std::string decoded_photometric(const std::string& photometric) {
  return photometric == "YBR_RCT" || photometric == "YBR_ICT" ? "RGB" : photometric;
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
  h.series_key = salted_hash(text(ds, DCM_SeriesInstanceUID));
  h.patient_key = salted_hash(text(ds, DCM_PatientID));
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

DicomFrame decode_dicom_frame(const std::string& path, int64_t frame, torch::Tensor out) {
  LoadedFile loaded;
  load(path, loaded);
  DcmDataset& ds = *loaded.dataset;
  const auto f = pixel_format(ds, loaded.transfer_syntax);
  if (!ds.tagExists(DCM_PixelData))
    throw InputError(fail(path, ds.tagExists(DCM_Rows) || is_image_class(ds) ? kNoPixels
                                                                             : non_image_kind(ds)));
  check_format(path, f);
  const int64_t frames = integer(ds, DCM_NumberOfFrames, 1);
  if (frame < 0 || frame >= frames)
    throw InputError(
        fail(path, "frame " + std::to_string(frame) + " of " + std::to_string(frames)));
  const std::string& syntax = loaded.transfer_syntax;
  if (!dicom_decodable(syntax))
    throw InputError(fail(path, "no decoder here for transfer syntax " + syntax + " (" +
                                    f.transfer_syntax_name + ")"));
  const auto lut = modality_lut(path, ds, f);
  std::optional<StoredFrame> stored;
  if (is_native(syntax)) {
    check_native_length(path, ds, f, frames);
    stored = native_frame(path, ds, f, syntax, frame);
  } else {
    if (f.bits_allocated == 1)
      throw InputError(fail(path, "BitsAllocated 1 in compressed pixel data (" +
                                      f.transfer_syntax_name + ") is not read"));
    // One toolkit failing is not yet a bad file: DCMTK first where it has the codec, then GDCM.
    std::string dcmtk_words, gdcm_words;
    if (kGdcmSyntaxes.count(syntax)) {
      stored = jpeg2000_frame(path, pixel_data_of(path, ds), f, frames, frame);
    } else {
      if (is_dcmjpeg(syntax) &&
          !jpeg_frame_header_found(
              frame_bytes_encapsulated(path, pixel_data_of(path, ds), f, frames, frame)))
        dcmtk_words = "[DCMTK: not tried: the JPEG stream has no frame header before its scan]";
      else
        stored = dcmtk_frame(path, ds, f, frame, dcmtk_words);
      if (!stored) stored = gdcm_frame(path, ds, f, frames, frame, gdcm_words);
    }
    if (!stored)
      throw InputError(fail(path, "cannot decode frame " + std::to_string(frame) + " (" +
                                      f.transfer_syntax_name + ") " + dcmtk_words + " " +
                                      gdcm_words));
  }
  stored->photometric = decoded_photometric(stored->photometric);
  return to_frame(path, std::move(*stored), lut ? &*lut : nullptr, std::move(out));
}

torch::Tensor read_dicom_frame(const std::string& path, int64_t frame, torch::Tensor out) {
  return decode_dicom_frame(path, frame, std::move(out)).values;
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
    throw InputError(
        "no readable DICOM image series among " + std::to_string(items.size()) + " files (" +
        std::to_string(others.size()) + " non-image objects" +
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
