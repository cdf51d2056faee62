#include "io/dicom_file.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>
#include <gdcmTrace.h>

#include "base/errors.h"

namespace pretext::io::dicom {
namespace {

// JPEG 2000 (lossless only, and lossy): DCMTK's free codecs lack it, OpenJPEG decodes it (GDCM
// gets a second try at whatever DCMTK's codecs refuse).
const std::set<std::string> kJpeg2000Syntaxes = {"1.2.840.10008.1.2.4.90",
                                                 "1.2.840.10008.1.2.4.91"};
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

void check_transfer_syntax(const std::string& path, const std::string& uid) {
  if (uid.empty()) throw InputError(fail(path, "the file meta header has no TransferSyntaxUID"));
  if (DcmXfer(uid.c_str()).getXfer() == EXS_Unknown)
    throw InputError(fail(path, "unknown transfer syntax " + uid));
}

bool has_lut(DcmDataset& ds) {
  DcmItem* item = nullptr;
  return ds.findAndGetSequenceItem(DCM_ModalityLUTSequence, item, 0).good() && item != nullptr;
}

}  // namespace

const char* const kNoPixels =
    "image without pixel data (truncated, or an export that left the pixels out)";

std::string fail(const std::string& path, const std::string& reason) {
  return path + ": DICOM: " + reason;
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

std::optional<int64_t> pixel_value(DcmItem& item, const DcmTagKey& tag, bool is_signed,
                                   unsigned long position) {
  Uint16 word = 0;
  Sint16 signed_word = 0;
  if (item.findAndGetUint16(tag, word, position).bad()) {
    if (item.findAndGetSint16(tag, signed_word, position).bad()) return std::nullopt;
    word = static_cast<Uint16>(signed_word);
  }
  return is_signed ? static_cast<int64_t>(static_cast<int16_t>(word)) : word;
}

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
  const std::string sop = found               ? name
                          : sop_class.empty() ? "no SOP class"
                                              : "SOP class " + sop_class;
  return kind + " (" + sop + (kind.rfind("no pixel data", 0) == 0 ? ")" : "), not an image");
}

bool is_image_class(DcmDataset& ds) {
  const std::string sop_class = text(ds, DCM_SOPClassUID);
  return !sop_class.empty() && dcmIsaStorageSOPClassUID(sop_class.c_str(), ESSC_Image);
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
  // Checked before anything is allocated: a header may claim 65535 x 65535 x 3 x 32 bits (48 GiB
  // a frame); the decoders' buffers are addressed with 32 bits.
  const double frame_gib = static_cast<double>(f.rows) * static_cast<double>(f.columns) *
                           static_cast<double>(f.samples_per_pixel * f.bits_allocated) / 8 /
                           (1024.0 * 1024 * 1024);
  if (frame_gib > 2) {
    char size[32];
    std::snprintf(size, sizeof size, "%.1f", frame_gib);
    bad(std::to_string(f.rows) + " x " + std::to_string(f.columns) + " x " +
        std::to_string(f.samples_per_pixel) + " samples of " + std::to_string(f.bits_allocated) +
        " bits: " + size + " GiB a frame (pretext reads up to 2)");
  }
  if (f.bits_allocated == 1 && f.samples_per_pixel != 1)
    bad("BitsAllocated 1 with " + std::to_string(f.samples_per_pixel) + " samples per pixel");
  if (f.rescale_slope == 0.0) bad("RescaleSlope 0");
  if (f.pixel_spacing[0] < 0 || f.pixel_spacing[1] < 0 ||
      (f.pixel_spacing[0] == 0) != (f.pixel_spacing[1] == 0))
    bad("PixelSpacing " + std::to_string(f.pixel_spacing[0]) + "\\" +
        std::to_string(f.pixel_spacing[1]) + " (must be two positive values)");
  const std::string& p = f.photometric;
  if (p == "PALETTE COLOR") bad("PALETTE COLOR images are not supported (convert them to RGB)");
  const bool colour =
      p == "RGB" || is_ybr_full(p) || p == "YBR_RCT" || p == "YBR_ICT" || p == "YBR_PARTIAL_420";
  const bool grey = p == "MONOCHROME1" || p == "MONOCHROME2" || p.empty();
  if (!colour && !grey)
    bad("photometric interpretation " + p +
        " is not read (MONOCHROME1/2, RGB, YBR_FULL(_422), "
        "YBR_RCT / YBR_ICT and YBR_PARTIAL_420 of compressed data are)");
  if ((colour ? 3 : 1) != f.samples_per_pixel)
    bad(p + " with " + std::to_string(f.samples_per_pixel) + " samples per pixel");
  if (p == "YBR_FULL_422" && f.columns % 2 != 0)
    bad("YBR_FULL_422 with an odd number of columns (" + std::to_string(f.columns) + ")");
}

bool is_native(const std::string& transfer_syntax) {
  return transfer_syntax == "1.2.840.10008.1.2" || transfer_syntax == "1.2.840.10008.1.2.1" ||
         transfer_syntax == "1.2.840.10008.1.2.2" || transfer_syntax == "1.2.840.10008.1.2.1.99";
}

// Bytes of one frame of 8, 16 or 32 bits a sample; YBR_FULL_422 as stored has two samples a pixel.
int64_t frame_bytes(const DicomPixelFormat& f, bool subsampled) {
  return f.rows * f.columns * (subsampled ? 2 : f.samples_per_pixel) * (f.bits_allocated / 8);
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

bool dcmtk_decodes(const std::string& transfer_syntax) {
  return kDcmtkSyntaxes.count(transfer_syntax) > 0;
}

bool is_jpeg2000(const std::string& transfer_syntax) {
  return kJpeg2000Syntaxes.count(transfer_syntax) > 0;
}

}  // namespace pretext::io::dicom
