#include "tests/io/dicom_data.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <vector>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcrleerg.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djencode.h>
#include <dcmtk/dcmjpeg/djrplol.h>
#include <dcmtk/dcmjpeg/djrploss.h>
#include <dcmtk/dcmjpls/djencode.h>
#include <dcmtk/dcmjpls/djrparam.h>
#include <gdcmImageChangeTransferSyntax.h>
#include <gdcmImageReader.h>
#include <gdcmImageWriter.h>
#include <gdcmJPEG2000Codec.h>
#include <torch/types.h>

namespace pretext::testing {

const char* const kPatientName = "Quixotewright^Ermenegilda";
const char* const kPatientId = "PID-86753091";
const char* const kBirthDate = "19230417";
const char* const kAccession = "ACC-5550199";
const char* const kInstitution = "Zanzibar Memorial Infirmary";
const char* const kPhysician = "Drumblewick^Horatio";
const char* const kUidRoot = "1.2.826.0.1.3680043.99.424242.";

namespace {

// Whether the syntax compresses pixel data, which then must be encoded before saving. DCMTK 3.6.9
// deprecates isEncapsulated() for this pair of questions (it adds encapsulated uncompressed).
bool compressed(const DcmXfer& syntax) {
#if PACKAGE_VERSION_NUMBER >= 369
  return syntax.usesEncapsulatedFormat() && syntax.isPixelDataCompressed();
#else
  return syntax.isEncapsulated();
#endif
}

void check(const OFCondition& status, const std::string& what) {
  if (status.bad()) throw std::runtime_error(what + ": " + status.text());
}

void register_encoders() {
  static std::once_flag once;
  std::call_once(once, [] {
    DcmRLEEncoderRegistration::registerCodecs();
    DJEncoderRegistration::registerCodecs();
    DJLSEncoderRegistration::registerCodecs();
  });
}

std::string uid(const std::string& suffix) { return kUidRoot + suffix; }

void put(DcmItem& ds, const DcmTagKey& tag, const std::string& value) {
  check(ds.putAndInsertString(tag, value.c_str()), "put " + value);
}

void put_header(DcmDataset& ds, const DicomSpec& spec, int64_t frames, int64_t rows,
                int64_t columns) {
  static int counter = 0;
  const bool non_image = spec.structured_report || !spec.non_image_class.empty();
  put(ds, DCM_SOPClassUID,
      spec.structured_report          ? std::string(UID_BasicTextSRStorage)
      : !spec.non_image_class.empty() ? spec.non_image_class
                                      : std::string(UID_CTImageStorage));
  put(ds, DCM_SOPInstanceUID, uid("9." + std::to_string(++counter)));
  put(ds, DCM_StudyInstanceUID, uid("7"));
  put(ds, DCM_SeriesInstanceUID, uid("8." + spec.series));
  put(ds, DCM_PatientName, kPatientName);
  put(ds, DCM_PatientID, spec.patient_id);
  put(ds, DCM_PatientBirthDate, kBirthDate);
  put(ds, DCM_AccessionNumber, kAccession);
  put(ds, DCM_InstitutionName, kInstitution);
  put(ds, DCM_ReferringPhysicianName, kPhysician);
  put(ds, DCM_Modality, spec.structured_report ? "SR" : spec.modality);
  put(ds, DCM_InstanceNumber, std::to_string(spec.instance));
  if (non_image) return;
  ds.putAndInsertUint16(DCM_Rows, static_cast<Uint16>(rows));
  ds.putAndInsertUint16(DCM_Columns, static_cast<Uint16>(columns));
  ds.putAndInsertUint16(DCM_BitsAllocated, static_cast<Uint16>(spec.bits_allocated));
  ds.putAndInsertUint16(DCM_BitsStored, static_cast<Uint16>(spec.bits_stored));
  ds.putAndInsertUint16(DCM_HighBit, static_cast<Uint16>(spec.bits_stored - 1));
  ds.putAndInsertUint16(DCM_PixelRepresentation, spec.is_signed ? 1 : 0);
  ds.putAndInsertUint16(DCM_SamplesPerPixel, static_cast<Uint16>(spec.samples_per_pixel));
  if (spec.samples_per_pixel > 1) ds.putAndInsertUint16(DCM_PlanarConfiguration, spec.planar);
  put(ds, DCM_PhotometricInterpretation, spec.photometric);
  if (frames > 1) put(ds, DCM_NumberOfFrames, std::to_string(frames));
  char spacing[64];
  std::snprintf(spacing, sizeof spacing, "%g\\%g", spec.pixel_spacing[0], spec.pixel_spacing[1]);
  put(ds, DCM_PixelSpacing, spacing);
  put(ds, DCM_SliceThickness, std::to_string(spec.slice_thickness));
  if (spec.with_position) {
    char position[64];
    std::snprintf(position, sizeof position, "-100\\-100\\%g", spec.z);
    put(ds, DCM_ImagePositionPatient, position);
    put(ds, DCM_ImageOrientationPatient, "1\\0\\0\\0\\1\\0");
  }
  // Padding values take the pixel representation's VR (US or SS).
  const auto put_pixel_value = [&](const DcmTagKey& tag, int value) {
    check(spec.is_signed ? ds.putAndInsertSint16(tag, static_cast<Sint16>(value))
                         : ds.putAndInsertUint16(tag, static_cast<Uint16>(value)),
          "pixel value");
  };
  if (spec.padding_value) put_pixel_value(DCM_PixelPaddingValue, *spec.padding_value);
  if (spec.padding_limit) put_pixel_value(DCM_PixelPaddingRangeLimit, *spec.padding_limit);
  if (!spec.modality_lut.empty()) {
    DcmItem* item = nullptr;
    check(ds.findOrCreateSequenceItem(DCM_ModalityLUTSequence, item, -2), "LUT item");
    const std::vector<Uint16> descriptor = {static_cast<Uint16>(spec.modality_lut.size()),
                                            static_cast<Uint16>(spec.lut_first), 16};
    check(item->putAndInsertUint16Array(DCM_LUTDescriptor, descriptor.data(), 3), "descriptor");
    std::vector<Uint16> data(spec.modality_lut.begin(), spec.modality_lut.end());
    check(item->putAndInsertUint16Array(DCM_LUTData, data.data(), data.size()), "LUT data");
    put(*item, DCM_ModalityLUTType, "HU");
    return;
  }
  char rescale[32];
  std::snprintf(rescale, sizeof rescale, "%g", spec.slope);
  put(ds, DCM_RescaleSlope, rescale);
  std::snprintf(rescale, sizeof rescale, "%g", spec.intercept);
  put(ds, DCM_RescaleIntercept, rescale);
}

// Stored values in file order: frames, then rows, then columns, samples interleaved or planar.
void put_pixels(DcmDataset& ds, const DicomSpec& spec) {
  auto values = spec.stored.to(torch::kInt64);
  if (spec.samples_per_pixel > 1 && !spec.planar) values = values.permute({1, 2, 0});
  values = values.contiguous().flatten();
  std::vector<int64_t> v(values.data_ptr<int64_t>(), values.data_ptr<int64_t>() + values.numel());
  if (spec.photometric == "YBR_FULL_422") {  // Y1 Y2 Cb1 Cr1 for each pair of pixels
    std::vector<int64_t> pairs;
    for (size_t p = 0; p + 5 < v.size(); p += 6)
      pairs.insert(pairs.end(), {v[p], v[p + 3], v[p + 1], v[p + 2]});
    v = pairs;
  }
  const int64_t n = static_cast<int64_t>(v.size());
  if (spec.bits_allocated == 1) {
    std::vector<Uint8> bytes(static_cast<size_t>((n + 7) / 8));
    for (int64_t i = 0; i < n; ++i)
      if (v[i] & 1) bytes[i / 8] |= static_cast<Uint8>(1u << (i % 8));
    check(ds.putAndInsertUint8Array(DCM_PixelData, bytes.data(), bytes.size()), "pixel data");
  } else if (spec.bits_allocated == 8) {
    std::vector<Uint8> bytes(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) bytes[i] = static_cast<Uint8>(v[i] & 0xff);
    check(ds.putAndInsertUint8Array(DCM_PixelData, bytes.data(), n), "pixel data");
  } else if (spec.bits_allocated == 32) {
    // OW words in the syntax's byte order: a big-endian 32-bit sample is its high word first.
    const bool big_endian = spec.transfer_syntax == "1.2.840.10008.1.2.2";
    std::vector<Uint16> words;
    for (int64_t i = 0; i < n; ++i) {
      const auto sample = static_cast<uint32_t>(v[i]);
      const auto high = static_cast<Uint16>(sample >> 16), low = static_cast<Uint16>(sample);
      if (big_endian)
        words.insert(words.end(), {high, low});
      else
        words.insert(words.end(), {low, high});
    }
    check(ds.putAndInsertUint16Array(DCM_PixelData, words.data(), words.size()), "pixel data");
  } else {
    std::vector<Uint16> words(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) words[i] = static_cast<Uint16>(v[i] & 0xffff);
    check(ds.putAndInsertUint16Array(DCM_PixelData, words.data(), n), "pixel data");
  }
}

void to_jpeg2000(const std::string& source, const std::string& path, bool lossless) {
  gdcm::ImageReader reader;
  reader.SetFileName(source.c_str());
  if (!reader.Read()) throw std::runtime_error(source + ": GDCM cannot read");
  // Lossless: the reversible wavelet; lossy: the irreversible one at 10:1. Colour images get the
  // matching colour transform. Three resolutions suit images as small as 8 x 8.
  gdcm::JPEG2000Codec codec;
  codec.SetReversible(lossless);
  if (!lossless) codec.SetRate(0, 10);
  codec.SetNumberOfResolutions(3);
  if (reader.GetImage().GetPixelFormat().GetSamplesPerPixel() == 3) codec.SetMCT(1);
  gdcm::ImageChangeTransferSyntax change;
  change.SetTransferSyntax(lossless ? gdcm::TransferSyntax::JPEG2000Lossless
                                    : gdcm::TransferSyntax::JPEG2000);
  change.SetUserCodec(&codec);
  change.SetInput(reader.GetImage());
  if (!change.Change()) throw std::runtime_error(source + ": GDCM cannot encode JPEG 2000");
  gdcm::ImageWriter writer;
  writer.SetFileName(path.c_str());
  writer.SetFile(reader.GetFile());
  writer.SetImage(change.GetOutput());
  if (!writer.Write()) throw std::runtime_error(path + ": GDCM cannot write");
}

}  // namespace

void write_dicom(const std::string& path, const DicomSpec& spec) {
  register_encoders();
  if (spec.transfer_syntax == "1.2.840.10008.1.2.4.90" ||
      spec.transfer_syntax == "1.2.840.10008.1.2.4.91") {
    DicomSpec plain = spec;
    plain.transfer_syntax = "1.2.840.10008.1.2.1";
    write_dicom(path + ".plain", plain);
    to_jpeg2000(path + ".plain", path, spec.transfer_syntax.back() == '0');
    std::remove((path + ".plain").c_str());
    return;
  }
  DcmFileFormat file;
  DcmDataset& ds = *file.getDataset();
  const auto& s = spec.stored;
  const bool colour = spec.samples_per_pixel > 1;
  const int64_t frames = (!colour && s.dim() == 3) ? s.size(0) : 1;
  put_header(ds, spec, frames, s.size(-2), s.size(-1));
  if (!spec.structured_report && spec.non_image_class.empty() && spec.with_pixel_data)
    put_pixels(ds, spec);
  const E_TransferSyntax xfer = DcmXfer(spec.transfer_syntax.c_str()).getXfer();
  if (xfer == EXS_Unknown) throw std::runtime_error("unknown syntax " + spec.transfer_syntax);
  if (compressed(DcmXfer(xfer))) {
    DJ_RPLossless lossless;
    DJ_RPLossy lossy(95);
    DJLSRepresentationParameter jpeg_ls(0, OFTrue);
    const DcmRepresentationParameter* parameter = nullptr;
    if (xfer == EXS_JPEGProcess14SV1 || xfer == EXS_JPEGProcess14) parameter = &lossless;
    if (xfer == EXS_JPEGProcess1 || xfer == EXS_JPEGProcess2_4) parameter = &lossy;
    if (xfer == EXS_JPEGLSLossless) parameter = &jpeg_ls;
    check(ds.chooseRepresentation(xfer, parameter), "encode " + spec.transfer_syntax);
    if (!ds.canWriteXfer(xfer)) throw std::runtime_error("cannot encode " + spec.transfer_syntax);
  }
  check(file.saveFile(path.c_str(), xfer), path);
  if (!spec.preamble.empty()) {
    std::fstream out(path, std::ios::binary | std::ios::in | std::ios::out);
    out.write(spec.preamble.data(), static_cast<std::streamsize>(spec.preamble.size()));
  }
}

at::Tensor known_hu(int64_t slices, int64_t rows, int64_t columns) {
  return (torch::arange(slices * rows * columns, torch::kFloat32) * 10 - 1000)
      .view({slices, rows, columns});
}

void write_ct_series(const std::string& folder, int64_t slices, const std::string& transfer_syntax,
                     const std::string& series) {
  const auto hu = known_hu(slices);
  // File names in an order unrelated to the anatomy: 7 is coprime with the counts tests use.
  for (int64_t s = 0; s < slices; ++s) {
    DicomSpec spec;
    spec.stored = (hu[s] + 1024).to(torch::kInt64);
    spec.transfer_syntax = transfer_syntax;
    spec.z = 2.5 * static_cast<double>(s);
    spec.instance = static_cast<int>(slices - s);  // reversed, so that position must win
    spec.series = series;
    const int64_t name = (s * 7 + 3) % slices;
    write_dicom(folder + "/IM" + std::to_string(1000 + name) + ".dcm", spec);
  }
}

}  // namespace pretext::testing
