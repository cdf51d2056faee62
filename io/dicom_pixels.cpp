#include "io/dicom_file.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <type_traits>
#include <vector>

#include <unistd.h>

#include <dcmtk/dcmdata/dccodec.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfcache.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <gdcmImage.h>
#include <gdcmSequenceOfFragments.h>
#include <gdcmTrace.h>
#include <torch/types.h>

#include "base/errors.h"
#include "io/dicom.h"
#include "io/jpeg2000.h"

// Decoding DICOM pixel data: stored bytes of one frame (native, DCMTK's codecs, OpenJPEG, GDCM)
// to values (BitsStored, sign, Modality LUT or rescale, MONOCHROME1, padding, YBR to RGB).

namespace pretext::io {
using namespace dicom;
namespace {

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
  bool padding(int64_t v) const {
    return padding_ && v >= padding_->first && v <= padding_->second;
  }
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

// Bytes of one frame. Not zero-filled: the decoders write every byte, and clearing half a MiB per
// slice shows.
class FrameBuffer {
 public:
  FrameBuffer() = default;
  explicit FrameBuffer(size_t size) : data_(new char[size]), size_(size) {}
  char* data() { return data_.get(); }
  const char* data() const { return data_.get(); }
  size_t size() const { return size_; }
  char& operator[](size_t i) { return data_[i]; }

 private:
  std::unique_ptr<char[]> data_;
  size_t size_ = 0;
};

// One frame's stored samples in host byte order, and how to read them.
struct StoredFrame {
  FrameBuffer bytes;
  DicomPixelFormat format;  ///< of `bytes`: 1-bit masks arrive unpacked, one byte a pixel
  std::string photometric;  ///< after decoding (codecs may turn YBR into RGB)
  bool planar = false;
  bool subsampled = false;  ///< YBR_FULL_422 as stored: Y1 Y2 Cb Cr for each pair of pixels
};

// Y1 Y2 Cb Cr -> Y1 Cb Cr Y2 Cb Cr: two pixels share their chroma (PS3.3 C.7.6.3.1.2).
FrameBuffer expand_422(const FrameBuffer& in, int64_t pixels, int64_t sample_bytes) {
  FrameBuffer out(static_cast<size_t>(pixels * 3 * sample_bytes));
  const size_t n = static_cast<size_t>(sample_bytes);
  const auto copy = [&](int64_t to, int64_t from) {
    std::memcpy(out.data() + to * sample_bytes, in.data() + from * sample_bytes, n);
  };
  for (int64_t pair = 0; pair < pixels / 2; ++pair) {
    const int64_t src = pair * 4, dst = pair * 6;
    copy(dst + 0, src + 0);  // Y1
    copy(dst + 3, src + 1);  // Y2
    copy(dst + 1, src + 2);  // Cb
    copy(dst + 4, src + 2);
    copy(dst + 2, src + 3);  // Cr
    copy(dst + 5, src + 3);
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
    throw InputError(
        fail(path,
             photometric + (stored.subsampled ? " uncompressed" : " as decoded") + " is not read"));
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

// DCMTK reads big-endian OW as 16-bit words; samples of 8 or 32 bits need their bytes put back.
void fix_big_endian_words(FrameBuffer& bytes, int64_t bits_allocated) {
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
  StoredFrame stored{{},
                     f,
                     f.photometric,
                     integer(ds, DCM_PlanarConfiguration, 0) == 1,
                     f.photometric == "YBR_FULL_422"};
  const int64_t first_bit = native_bits(f, frame), bits = native_bits(f, 1);
  const int64_t first_byte = first_bit / 8, end_byte = (first_bit + bits + 7) / 8;
  FrameBuffer bytes(static_cast<size_t>(end_byte - first_byte));
  DcmFileCache cache;
  const OFCondition status = pixels.getPartialValue(bytes.data(), static_cast<Uint32>(first_byte),
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
  stored.bytes = FrameBuffer(static_cast<size_t>(bits));
  for (int64_t i = 0; i < bits; ++i) {
    const int64_t bit = first_bit + i - first_byte * 8;
    stored.bytes.data()[i] = static_cast<char>(
        (static_cast<unsigned char>(bytes[static_cast<size_t>(bit / 8)]) >> (bit % 8)) & 1);
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
  StoredFrame stored{FrameBuffer(static_cast<size_t>(size + (size & 1))), f, "", false, false};
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
    throw InputError(fail(path, "cannot tell which fragments hold frame " + std::to_string(frame) +
                                    " (no basic offset table)"));
  std::vector<uint8_t> bytes;
  for (Uint32 i = first; i < end; ++i) {
    DcmPixelItem* item = nullptr;
    Uint8* data = nullptr;
    if (sequence->getItem(item, i).bad() || item == nullptr) break;
    const OFCondition status = item->getUint8Array(data);
    if (status.bad())
      throw InputError(fail(path, "fragment " + std::to_string(i) + ": " + parse_failure(status)));
    if (data) bytes.insert(bytes.end(), data, data + item->getLength());
  }
  return bytes;
}

// JPEG 2000 through OpenJPEG, into the stored layout the rest of the conversion reads.
StoredFrame jpeg2000_frame(const std::string& path, DcmPixelData& pixels, const DicomPixelFormat& f,
                           int64_t frames, int64_t frame) {
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
  StoredFrame stored{FrameBuffer(static_cast<size_t>(frame_bytes(f))), f, f.photometric, false,
                     false};
  const int64_t n = static_cast<int64_t>(image.samples.size());
  for (int64_t i = 0; i < n; ++i) {
    const int32_t v = image.samples[static_cast<size_t>(i)];
    switch (f.bits_allocated) {
      case 8:
        stored.bytes.data()[i] = static_cast<char>(v);
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
  return transfer_syntax == "1.2.840.10008.1.2.4.50" ||
         transfer_syntax == "1.2.840.10008.1.2.4.51" ||
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
    const bool sof =
        marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc;
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
    stored.bytes = FrameBuffer(static_cast<size_t>(size));
    std::memcpy(stored.bytes.data(), buffer.data(), static_cast<size_t>(size));
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
  return dcmtk_decodes(transfer_syntax) || is_jpeg2000(transfer_syntax);
}

DicomFrame decode_dicom_frame(const std::string& path, int64_t frame, torch::Tensor out) {
  LoadedFile loaded;
  load(path, loaded);
  DcmDataset& ds = *loaded.dataset;
  const auto f = pixel_format(ds, loaded.transfer_syntax);
  if (!ds.tagExists(DCM_PixelData))
    throw InputError(
        fail(path, ds.tagExists(DCM_Rows) || is_image_class(ds) ? kNoPixels : non_image_kind(ds)));
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
    if (is_jpeg2000(syntax)) {
      stored = jpeg2000_frame(path, pixel_data_of(path, ds), f, frames, frame);
    } else {
      if (is_dcmjpeg(syntax) && !jpeg_frame_header_found(frame_bytes_encapsulated(
                                    path, pixel_data_of(path, ds), f, frames, frame)))
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

}  // namespace pretext::io
