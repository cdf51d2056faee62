#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <gtest/gtest.h>
#include <torch/types.h>

#include "base/errors.h"
#include "io/catalog.h"
#include "io/dicom.h"
#include "io/slide.h"
#include "io/source.h"
#include "tests/io/dicom_data.h"
#include "tests/io/test_data.h"

namespace pretext::io {
namespace {
namespace fs = std::filesystem;
using testing::DicomSpec;
using testing::TempDir;

DicomScan scan_folder(const std::string& folder, OnBadFile on_bad = OnBadFile::kFail) {
  return scan_dicom(Catalog::from_folder(folder).items(), on_bad);
}

// The HU volume of a scanned series, slice by slice in its order.
torch::Tensor read_series(const DicomSeries& series) {
  std::vector<torch::Tensor> slices;
  for (const auto& slice : series.slices)
    slices.push_back(read_dicom_frame(slice.path, slice.frame)[0]);
  return torch::stack(slices);
}

// Every lossless syntax gives back the same Hounsfield units, in anatomical order although the
// files are named in shuffled order and numbered backwards.
class EverySyntax : public ::testing::TestWithParam<const char*> {};

TEST_P(EverySyntax, SameHounsfieldUnitsInAnatomicalOrder) {
  TempDir dir;
  testing::write_ct_series(dir.path(), 5, GetParam());
  const auto scan = scan_folder(dir.path());
  ASSERT_EQ(scan.series.size(), 1u);
  const auto& series = scan.series[0];
  EXPECT_EQ(series.format.transfer_syntax, GetParam());
  EXPECT_EQ(series.ordered_by, "position");
  EXPECT_DOUBLE_EQ(series.slice_spacing, 2.5);
  EXPECT_EQ(series.missing_slices, 0);
  EXPECT_EQ(series.format.modality, "CT");
  EXPECT_DOUBLE_EQ(series.format.pixel_spacing[0], 0.7);
  EXPECT_DOUBLE_EQ(series.format.slice_thickness, 2.5);
  EXPECT_TRUE(torch::equal(read_series(series), testing::known_hu(5)));
}

INSTANTIATE_TEST_SUITE_P(Dicom, EverySyntax,
                         ::testing::Values("1.2.840.10008.1.2",        // implicit little endian
                                           "1.2.840.10008.1.2.1",      // explicit little endian
                                           "1.2.840.10008.1.2.2",      // explicit big endian
                                           "1.2.840.10008.1.2.1.99",   // deflated
                                           "1.2.840.10008.1.2.5",      // RLE
                                           "1.2.840.10008.1.2.4.57",   // JPEG lossless
                                           "1.2.840.10008.1.2.4.70",   // JPEG lossless SV1
                                           "1.2.840.10008.1.2.4.80",   // JPEG-LS lossless
                                           "1.2.840.10008.1.2.4.90"),  // JPEG 2000 (GDCM)
                         [](const auto& param) {
                           std::string name = param.param;
                           for (auto& c : name)
                             if (c == '.') c = '_';
                           return name;
                         });

TEST(Dicom, LossyJpegComesBackClose) {
  TempDir dir;
  // Baseline is 8-bit, extended 12-bit; a smooth ramp survives quality 95 within a few units.
  const auto ramp = torch::arange(64, torch::kInt64).view({8, 8}) * 3 + 20;
  for (const auto* syntax : {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"}) {
    DicomSpec spec;
    spec.stored = ramp;
    spec.transfer_syntax = syntax;
    spec.bits_allocated = std::string(syntax).back() == '0' ? 8 : 16;
    spec.bits_stored = spec.bits_allocated == 8 ? 8 : 12;
    spec.intercept = 0;
    write_dicom(dir / "lossy.dcm", spec);
    const auto decoded = read_dicom_frame(dir / "lossy.dcm")[0];
    EXPECT_LT((decoded - ramp.to(torch::kFloat32)).abs().max().item<float>(), 8) << syntax;
  }
}

TEST(Dicom, BitsStoredSignAndRescaleAreHonoured) {
  TempDir dir;
  // 12 bits stored, signed: 0xFFF is -1, 0x800 is -2048; bits above BitsStored are noise.
  DicomSpec spec;
  spec.stored = torch::tensor({0x0FFF, 0x0800, 0x07FF, 0xF001}, torch::kInt64).view({2, 2});
  spec.is_signed = true;
  spec.slope = 2.0;
  spec.intercept = 5.0;
  write_dicom(dir / "signed.dcm", spec);
  const auto values = read_dicom_frame(dir / "signed.dcm")[0];
  const auto expected = torch::tensor({-1.f, -2048.f, 2047.f, 1.f}).view({2, 2}) * 2 + 5;
  EXPECT_TRUE(torch::equal(values, expected)) << values;

  spec.is_signed = false;
  write_dicom(dir / "unsigned.dcm", spec);
  const auto plain = read_dicom_frame(dir / "unsigned.dcm")[0];
  EXPECT_TRUE(
      torch::equal(plain, torch::tensor({4095.f, 2048.f, 2047.f, 1.f}).view({2, 2}) * 2 + 5));
}

TEST(Dicom, Monochrome1IsInvertedSoThatHigherIsBrighter) {
  TempDir dir;
  DicomSpec spec;
  spec.stored = torch::tensor({0, 100, 4095}, torch::kInt64).view({1, 3});
  spec.photometric = "MONOCHROME1";
  spec.modality = "CR";
  spec.intercept = 0;
  write_dicom(dir / "cr.dcm", spec);
  EXPECT_TRUE(torch::equal(read_dicom_frame(dir / "cr.dcm")[0],
                           torch::tensor({4095.f, 3995.f, 0.f}).view({1, 3})));
}

TEST(Dicom, MultiFrameFramesAreSlicesReadOneByOne) {
  TempDir dir;
  DicomSpec spec;
  const auto hu = testing::known_hu(4);
  spec.stored = (hu + 1024).to(torch::kInt64);
  spec.with_position = false;
  write_dicom(dir / "enhanced.dcm", spec);
  const auto scan = scan_folder(dir.path());
  ASSERT_EQ(scan.series.size(), 1u);
  EXPECT_EQ(scan.series[0].ordered_by, "frame");
  EXPECT_EQ(scan.series[0].slices.size(), 4u);
  EXPECT_DOUBLE_EQ(scan.series[0].slice_spacing, 2.5);  // from SliceThickness
  EXPECT_TRUE(torch::equal(read_series(scan.series[0]), hu));
  EXPECT_TRUE(torch::equal(read_dicom_frame(dir / "enhanced.dcm", 2)[0], hu[2]));
  EXPECT_NE(testing::input_error_of([&] {
              read_dicom_frame(dir / "enhanced.dcm", 4);
            }).find("frame 4 of 4"),
            std::string::npos);
}

TEST(Dicom, RgbComesBackAsPlanesWhateverThePlanarConfiguration) {
  TempDir dir;
  const auto rgb = torch::randint(0, 256, {3, 4, 5}, torch::kInt64);
  for (const bool planar : {false, true}) {
    DicomSpec spec;
    spec.stored = rgb;
    spec.samples_per_pixel = 3;
    spec.planar = planar;
    spec.photometric = "RGB";
    spec.modality = "US";
    spec.bits_allocated = spec.bits_stored = 8;
    spec.intercept = 0;
    write_dicom(dir / "us.dcm", spec);
    EXPECT_TRUE(torch::equal(read_dicom_frame(dir / "us.dcm"), rgb.to(torch::kFloat32)))
        << "planar " << planar;
    // The same through io::open, as a 3-band image.
    auto source = open(dir / "us.dcm");
    EXPECT_EQ(source->info().format, "DICOM");
    EXPECT_EQ(source->info().bands.size(), 3u);
    EXPECT_TRUE(torch::equal(source->read({1, 1, 3, 2}).pixels,
                             rgb.slice(1, 1, 3).slice(2, 1, 4).to(torch::kFloat32)));
  }
}

TEST(Dicom, SeriesAreGroupedByUidNotByFolder) {
  TempDir dir;
  // Under one top folder, so that every file has the same label ("export").
  fs::create_directories(dir / "export/a");
  fs::create_directories(dir / "export/b");
  // Series 1 split over two folders; series 2 in folder b beside it; an SR object skipped.
  const auto hu = testing::known_hu(4);
  for (int64_t s = 0; s < 4; ++s) {
    DicomSpec spec;
    spec.stored = (hu[s] + 1024).to(torch::kInt64);
    spec.z = 2.5 * static_cast<double>(s);
    write_dicom(
        dir / (std::string(s % 2 ? "export/a" : "export/b") + "/s1_" + std::to_string(s) + ".dcm"),
        spec);
    spec.series = "2";
    spec.patient_id = "another";
    write_dicom(dir / ("export/b/s2_" + std::to_string(s) + ".dcm"), spec);
  }
  DicomSpec report;
  report.structured_report = true;
  report.stored = torch::zeros({1, 1}, torch::kInt64);
  write_dicom(dir / "export/b/report.dcm", report);
  const auto scan = scan_folder(dir.path());
  ASSERT_EQ(scan.series.size(), 2u);
  ASSERT_EQ(scan.non_image_objects.size(), 1u);
  EXPECT_NE(scan.non_image_objects[0].message.find("report.dcm: DICOM: a structured report"),
            std::string::npos)
      << scan.non_image_objects[0].message;
  EXPECT_EQ(scan.patients, 2);
  EXPECT_EQ(scan.files, 8);
  for (const auto& series : scan.series) EXPECT_TRUE(torch::equal(read_series(series), hu));
}

TEST(Dicom, MissingAndDuplicateSlicesAreReported) {
  TempDir dir;
  const auto hu = testing::known_hu(6);
  for (const int64_t s : {0, 1, 2, 4, 5}) {  // slice 3 missing
    DicomSpec spec;
    spec.stored = (hu[s] + 1024).to(torch::kInt64);
    spec.z = 2.5 * static_cast<double>(s);
    write_dicom(dir / ("s" + std::to_string(s) + ".dcm"), spec);
  }
  DicomSpec duplicate;
  duplicate.stored = (hu[2] + 1024).to(torch::kInt64);
  duplicate.z = 5.0;
  write_dicom(dir / "t_dup.dcm", duplicate);

  const auto message = testing::input_error_of([&] { scan_folder(dir.path()); });
  EXPECT_NE(message.find("t_dup.dcm"), std::string::npos) << message;
  EXPECT_NE(message.find("slice spacing 0"), std::string::npos) << message;

  const auto scan = scan_folder(dir.path(), OnBadFile::kSkip);
  ASSERT_EQ(scan.series.size(), 1u);
  EXPECT_EQ(scan.series[0].slices.size(), 5u);
  EXPECT_EQ(scan.series[0].missing_slices, 1);
  EXPECT_EQ(scan.duplicate_slices, 1);
  EXPECT_EQ(scan.bad_files.size(), 1u);
}

TEST(Dicom, PhasesAtEveryPositionAreKeptNotTakenForDuplicates) {
  TempDir dir;
  const auto hu = testing::known_hu(6);
  // Three positions, two phases each (instance numbers 1..6 run phase-major).
  for (int64_t s = 0; s < 6; ++s) {
    DicomSpec spec;
    spec.stored = (hu[s] + 1024).to(torch::kInt64);
    spec.z = 2.5 * static_cast<double>(s % 3);
    spec.instance = static_cast<int>(s + 1);
    write_dicom(dir / ("cine" + std::to_string(s) + ".dcm"), spec);
  }
  const auto scan = scan_folder(dir.path());
  ASSERT_EQ(scan.series.size(), 1u);
  const auto& series = scan.series[0];
  EXPECT_EQ(series.phases, 2);
  EXPECT_EQ(series.ordered_by, "position, then instance");
  EXPECT_DOUBLE_EQ(series.slice_spacing, 2.5);
  EXPECT_EQ(series.missing_slices, 0);
  EXPECT_TRUE(
      torch::equal(read_series(series), torch::stack({hu[0], hu[3], hu[1], hu[4], hu[2], hu[5]})));
}

TEST(Dicom, InconsistentRowsInASeriesAreBadFiles) {
  TempDir dir;
  testing::write_ct_series(dir.path(), 3, "1.2.840.10008.1.2.1");
  DicomSpec odd;
  odd.stored = torch::zeros({4, 8}, torch::kInt64);
  odd.z = 10;
  write_dicom(dir / "odd.dcm", odd);
  const auto message = testing::input_error_of([&] { scan_folder(dir.path()); });
  EXPECT_NE(message.find("odd.dcm: DICOM: 4 x 8 x 1 samples, the rest of its series is 8 x 8"),
            std::string::npos)
      << message;
  const auto scan = scan_folder(dir.path(), OnBadFile::kSkip);
  EXPECT_EQ(scan.series[0].slices.size(), 3u);
  EXPECT_EQ(scan.bad_files.size(), 1u);
}

TEST(Dicom, BadFilesAreReportedWithFileAndReason) {
  TempDir dir;
  DicomSpec spec;
  spec.stored = (testing::known_hu(1)[0] + 1024).to(torch::kInt64);
  write_dicom(dir / "good.dcm", spec);

  fs::copy_file(dir / "good.dcm", dir / "truncated.dcm");
  testing::truncate_file(dir / "truncated.dcm", 0.6);
  spec.with_pixel_data = false;
  write_dicom(dir / "no_pixels.dcm", spec);
  // A bare data set: the same bytes without preamble and meta header.
  {
    std::ifstream in(dir / "good.dcm", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    const auto meta_end = bytes.find(std::string("\x08\x00", 2), 132);
    testing::write_text(dir / "bare.dcm", bytes.substr(meta_end));
  }
  // An unknown transfer syntax: the meta header's UID rewritten in place (same length).
  {
    std::ifstream in(dir / "good.dcm", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    const auto at = bytes.find("1.2.840.10008.1.2.1");
    bytes.replace(at, 19, "1.2.840.10008.1.9.7");
    testing::write_text(dir / "unknown_syntax.dcm", bytes);
  }
  // A syntax DCMTK knows but nobody here decodes: JPEG 2000 Part 2 multi-component, in place of
  // JPEG baseline (same length, same encapsulated layout).
  {
    DicomSpec jpeg = spec;
    jpeg.with_pixel_data = true;
    jpeg.bits_allocated = jpeg.bits_stored = 8;
    jpeg.stored = torch::full({8, 8}, 100, torch::kInt64);
    jpeg.transfer_syntax = "1.2.840.10008.1.2.4.50";
    write_dicom(dir / "baseline.dcm", jpeg);
    std::ifstream in(dir / "baseline.dcm", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    const auto at = bytes.find("1.2.840.10008.1.2.4.50");
    bytes.replace(at, 22, "1.2.840.10008.1.2.4.92");
    testing::write_text(dir / "part2.dcm", bytes);
  }
  const std::map<std::string, std::string> expected = {
      {"part2.dcm", "no decoder here for transfer syntax 1.2.840.10008.1.2.4.92 (JPEG 2000 Part 2"},
      {"truncated.dcm", "truncated: the data set runs past the end of the file [DCMTK:"},
      {"no_pixels.dcm", "image without pixel data"},
      {"bare.dcm", "no 128-byte preamble"},
      {"unknown_syntax.dcm", "unknown transfer syntax 1.2.840.10008.1.9.7"},
  };
  for (const auto& [name, reason] : expected) {
    const auto message = testing::input_error_of([&] { read_dicom_frame(dir / name); });
    EXPECT_NE(message.find(dir / name + ": DICOM: " + reason), std::string::npos) << message;
  }
  // A folder scan stops at the first under kFail and counts every one under kSkip.
  EXPECT_NE(testing::input_error_of([&] { scan_folder(dir.path()); }), "no error");
  std::vector<CatalogItem> items;
  for (const char* name :
       {"good.dcm", "truncated.dcm", "no_pixels.dcm", "bare.dcm", "unknown_syntax.dcm"})
    items.push_back({dir / name, "", ""});
  const auto scan = scan_dicom(items, OnBadFile::kSkip);
  EXPECT_EQ(scan.series.size(), 1u);
  EXPECT_EQ(scan.bad_files.size(), 4u);
  // Only bad files: a clear error, not an empty series list; for one file, its own reason.
  const auto one = testing::input_error_of([&] {
    scan_dicom({{dir / "truncated.dcm", "", ""}}, OnBadFile::kSkip);
  });
  EXPECT_EQ(one.rfind(dir / "truncated.dcm: DICOM: truncated", 0), 0u) << one;
  const auto none = testing::input_error_of([&] {
    scan_dicom({{dir / "truncated.dcm", "", ""}, {dir / "bare.dcm", "", ""}}, OnBadFile::kSkip);
  });
  EXPECT_NE(none.find("no readable DICOM image series among 2 files (0 non-image objects; 2 bad "
                      "files, e.g. " +
                      dir / "truncated.dcm"),
            std::string::npos)
      << none;
}

TEST(Dicom, AFolderWithoutDicomSaysSo) {
  TempDir dir;
  testing::write_text(dir / "notes.txt", "not an image");
  const auto message = testing::input_error_of([&] { Catalog::from_folder(dir.path()); });
  EXPECT_NE(message.find("no image files found"), std::string::npos) << message;
}

TEST(Dicom, NothingIdentifyingInHeadersOrErrors) {
  TempDir dir;
  testing::write_ct_series(dir.path(), 2, "1.2.840.10008.1.2.1");
  const auto header = read_dicom_header(dir / "IM1000.dcm");
  for (const std::string& field :
       {header.format.modality, header.format.photometric, header.format.transfer_syntax_name}) {
    for (const char* secret : {testing::kPatientName, testing::kPatientId, testing::kUidRoot})
      EXPECT_EQ(field.find(secret), std::string::npos);
  }
  testing::truncate_file(dir / "IM1001.dcm", 0.9);
  const auto message = testing::input_error_of([&] { read_dicom_frame(dir / "IM1001.dcm"); });
  for (const char* secret : {testing::kPatientName, testing::kPatientId, testing::kInstitution,
                             testing::kAccession, testing::kUidRoot})
    EXPECT_EQ(message.find(secret), std::string::npos) << message;
}

}  // namespace
}  // namespace pretext::io

namespace pretext::io {
namespace {
namespace fs = std::filesystem;
using testing::DicomSpec;
using testing::TempDir;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

TEST(Dicom, ATiffHeaderInThePreambleIsStillDicom) {
  TempDir dir;
  // Dual-personality files: a TIFF header (here one pointing at an empty directory) in the
  // preamble, "DICM" at 128.
  for (int64_t s = 0; s < 3; ++s) {
    DicomSpec spec;
    spec.stored = (testing::known_hu(3)[s] + 1024).to(torch::kInt64);
    spec.z = 2.5 * static_cast<double>(s);
    spec.preamble = std::string("II*\0\x08\0\0\0\0\0", 10);
    write_dicom(dir / ("ge" + std::to_string(s) + ".dcm"), spec);
  }
  ASSERT_EQ(read_bytes(dir / "ge0.dcm").substr(0, 4), std::string("II*\0", 4));
  EXPECT_EQ(detect_format(dir / "ge0.dcm"), Format::kDicom);
  EXPECT_FALSE(is_slide(dir / "ge0.dcm"));
  EXPECT_EQ(open(dir / "ge0.dcm")->info().format, "DICOM");
  const auto scan = scan_folder(dir.path());
  ASSERT_EQ(scan.series.size(), 1u);
  EXPECT_TRUE(torch::equal(read_series(scan.series[0]), testing::known_hu(3)));
}

TEST(Dicom, ThirtyTwoBitValuesAreTheSameInEitherByteOrder) {
  TempDir dir;
  // Values past 16 bits: a byte-swapped read is off by orders of magnitude. Float32 holds them
  // to 24 bits, so the expectation is rounded the same way.
  const auto stored =
      torch::tensor(std::vector<int64_t>{0, 1, 70000, 0x00ABCDEF, 795000, 16777215}).view({2, 3});
  for (const char* syntax : {"1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2"}) {
    DicomSpec spec;
    spec.stored = stored;
    spec.transfer_syntax = syntax;
    spec.modality = "RTDOSE";
    spec.bits_allocated = spec.bits_stored = 32;
    spec.intercept = 0;
    write_dicom(dir / "dose.dcm", spec);
    EXPECT_TRUE(torch::equal(read_dicom_frame(dir / "dose.dcm")[0], stored.to(torch::kFloat32)))
        << syntax << "\n"
        << read_dicom_frame(dir / "dose.dcm");
  }
}

TEST(Dicom, OneBitMasksAreUnpackedFrameByFrame) {
  TempDir dir;
  // 5 x 5 frames: 25 bits each, so frames 1 and 2 start inside a byte.
  const auto mask = torch::randint(0, 2, {3, 5, 5}, torch::kInt64);
  DicomSpec spec;
  spec.stored = mask;
  spec.modality = "SEG";
  spec.bits_allocated = spec.bits_stored = 1;
  spec.intercept = 0;
  spec.with_position = false;
  write_dicom(dir / "liver.dcm", spec);
  const auto header = read_dicom_header(dir / "liver.dcm");
  EXPECT_EQ(header.format.bits_allocated, 1);
  EXPECT_EQ(header.frames, 3);
  for (int64_t f = 0; f < 3; ++f)
    EXPECT_TRUE(
        torch::equal(read_dicom_frame(dir / "liver.dcm", f)[0], mask[f].to(torch::kFloat32)))
        << "frame " << f;
}

// RGB from full-range YCbCr, independently of pretext's tensor code: PS3.3 C.7.6.3.1.2, rounded
// half up and clamped to 8 bits.
torch::Tensor rgb_of(const torch::Tensor& ybr) {
  auto rgb = torch::empty({3, ybr.size(1), ybr.size(2)}, torch::kFloat32);
  for (int64_t i = 0; i < ybr.size(1); ++i)
    for (int64_t j = 0; j < ybr.size(2); ++j) {
      const double y = ybr[0][i][j].item<double>(), cb = ybr[1][i][j].item<double>() - 128,
                   cr = ybr[2][i][j].item<double>() - 128;
      const double values[3] = {y + 1.402 * cr,
                                y - 0.114 * 1.772 / 0.587 * cb - 0.299 * 1.402 / 0.587 * cr,
                                y + 1.772 * cb};
      for (int c = 0; c < 3; ++c)
        rgb[c][i][j] = static_cast<float>(std::clamp(std::floor(values[c] + 0.5), 0.0, 255.0));
    }
  return rgb;
}

TEST(Dicom, YbrFullAndYbrFull422BecomeRgbWithinTheStoredRange) {
  TempDir dir;
  // Pairs of pixels share their chroma (what 4:2:2 keeps); the extremes overflow without a clamp.
  auto ybr = torch::randint(0, 256, {3, 4, 6}, torch::kInt64);
  ybr.slice(0, 1, 3).select(2, 1).copy_(ybr.slice(0, 1, 3).select(2, 0));
  ybr.slice(0, 1, 3).select(2, 3).copy_(ybr.slice(0, 1, 3).select(2, 2));
  ybr.slice(0, 1, 3).select(2, 5).copy_(ybr.slice(0, 1, 3).select(2, 4));
  ybr[0][0][0] = 255, ybr[2][0][0] = 255, ybr[2][0][1] = 255;  // R = 433 before the clamp
  ybr[0][1][0] = 0, ybr[1][1][0] = 0, ybr[1][1][1] = 0;        // B = -227 before the clamp
  const auto expected = rgb_of(ybr);
  for (const char* photometric : {"YBR_FULL", "YBR_FULL_422"}) {
    DicomSpec spec;
    spec.stored = ybr;
    spec.samples_per_pixel = 3;
    spec.photometric = photometric;
    spec.modality = "US";
    spec.bits_allocated = spec.bits_stored = 8;
    spec.intercept = 0;
    write_dicom(dir / "us.dcm", spec);
    const auto rgb = read_dicom_frame(dir / "us.dcm");
    EXPECT_TRUE(torch::equal(rgb, expected)) << photometric << "\n" << rgb - expected;
    EXPECT_EQ(rgb.min().item<float>(), 0.f);
    EXPECT_EQ(rgb.max().item<float>(), 255.f);
  }
}

// The multi-component transform flag of a JPEG 2000 codestream's COD marker (1: RCT or ICT).
int codestream_mct(const std::string& bytes) {
  const auto cod = bytes.find("\xff\x52");
  return cod == std::string::npos ? -1 : static_cast<unsigned char>(bytes[cod + 8]);
}

// Rewrites `path`'s PhotometricInterpretation, or other tags, keeping the pixel data as it is.
void set_photometric(const std::string& path, const char* photometric);
void edit_tags(const std::string& path, const std::function<OFCondition(DcmDataset&)>& edit);

TEST(Dicom, JpegTwoThousandColourIsRgbAfterTheMultiComponentTransform) {
  TempDir dir;
  // Smooth ramps, distinct per channel, so that 10:1 keeps them: a decoder that skipped the
  // inverse transform would be off by tens of units.
  const auto x = torch::arange(64, torch::kInt64).view({1, 64}).expand({64, 64});
  const auto y = torch::arange(64, torch::kInt64).view({64, 1}).expand({64, 64});
  const auto rgb = torch::stack({4 * x, 4 * y, 255 - 2 * (x + y)});
  for (const char* syntax : {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"}) {
    DicomSpec spec;
    spec.stored = rgb;
    spec.samples_per_pixel = 3;
    spec.photometric = "RGB";
    spec.modality = "XC";
    spec.bits_allocated = spec.bits_stored = 8;
    spec.intercept = 0;
    spec.transfer_syntax = syntax;
    write_dicom(dir / "photo.dcm", spec);
    // GDCM's encoder applies the colour transform (reversible for lossless, irreversible for
    // lossy) and leaves the header at RGB; the standard names it YBR_RCT / YBR_ICT.
    const bool lossless = std::string(syntax).back() == '0';
    ASSERT_EQ(codestream_mct(read_bytes(dir / "photo.dcm")), 1) << syntax;
    set_photometric(dir / "photo.dcm", lossless ? "YBR_RCT" : "YBR_ICT");
    EXPECT_EQ(read_dicom_header(dir / "photo.dcm").format.photometric,
              lossless ? "YBR_RCT" : "YBR_ICT");
    const auto decoded = read_dicom_frame(dir / "photo.dcm");
    const auto error = (decoded - rgb.to(torch::kFloat32)).abs();
    if (lossless)
      EXPECT_EQ(error.max().item<float>(), 0.f);
    else
      EXPECT_LT(error.mean().item<float>(), 3.f) << error.mean();
  }
}

// Inserts a comment marker (COM) holding `payload` after the SIZ marker of the codestream in the
// first fragment of `path`'s JPEG 2000 pixel data.
void add_codestream_comment(const std::string& path, const std::string& payload);

TEST(Dicom, AJpegTwoThousandFragmentHoldingDelimiterBytesIsDecoded) {
  TempDir dir;
  DicomSpec spec;
  spec.stored = (testing::known_hu(1)[0] + 1024).to(torch::kInt64);
  spec.transfer_syntax = "1.2.840.10008.1.2.4.90";
  write_dicom(dir / "j2k.dcm", spec);
  // FFFE,E0DD is the sequence delimitation item: a parser that scans for it ends the pixel data
  // inside the fragment.
  add_codestream_comment(dir / "j2k.dcm", std::string("\xfe\xff\xdd\xe0", 4));
  ASSERT_NE(
      read_bytes(dir / "j2k.dcm").find(std::string("\xff\x64\x00\x08\x00\x01\xfe\xff\xdd\xe0", 10)),
      std::string::npos);
  EXPECT_TRUE(torch::equal(read_dicom_frame(dir / "j2k.dcm")[0], testing::known_hu(1)[0]));
}

TEST(Dicom, ATruncatedJpegTwoThousandFileIsABadFileThatSaysTruncated) {
  TempDir dir;
  DicomSpec spec;
  spec.stored = (testing::known_hu(1, 32, 32)[0] + 1024).to(torch::kInt64);
  spec.transfer_syntax = "1.2.840.10008.1.2.4.90";
  write_dicom(dir / "j2k.dcm", spec);
  for (const double keep : {0.9, 0.5}) {
    fs::copy_file(dir / "j2k.dcm", dir / "cut.dcm", fs::copy_options::overwrite_existing);
    testing::truncate_file(dir / "cut.dcm", keep);
    const auto message = testing::input_error_of([&] { read_dicom_frame(dir / "cut.dcm"); });
    EXPECT_NE(message.find("cut.dcm: DICOM: "), std::string::npos) << message;
    EXPECT_NE(message.find("truncated"), std::string::npos) << message;
    const auto scan_message = testing::input_error_of([&] {
      scan_dicom({{dir / "cut.dcm", "", ""}}, OnBadFile::kSkip);
    });
    EXPECT_NE(scan_message.find("truncated"), std::string::npos) << scan_message;
    EXPECT_EQ(scan_message.find("non-image"), std::string::npos) << scan_message;
  }
}

TEST(Dicom, WhenBothToolkitsFailTheMessageSaysWhatEachSaid) {
  TempDir dir;
  DicomSpec spec;
  spec.stored = torch::full({8, 8}, 100, torch::kInt64);
  spec.bits_allocated = spec.bits_stored = 8;
  spec.intercept = 0;
  spec.transfer_syntax = "1.2.840.10008.1.2.4.50";
  write_dicom(dir / "jpeg.dcm", spec);
  // The JPEG stream's start-of-frame marker garbled in place: neither decoder can read it.
  std::string bytes = read_bytes(dir / "jpeg.dcm");
  const auto sof = bytes.find("\xff\xc0");
  ASSERT_NE(sof, std::string::npos);
  bytes[sof + 1] = '\x01';
  testing::write_text(dir / "jpeg.dcm", bytes);
  const auto message = testing::input_error_of([&] { read_dicom_frame(dir / "jpeg.dcm"); });
  EXPECT_NE(message.find("jpeg.dcm: DICOM: cannot decode frame 0 (JPEG Baseline"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("[DCMTK: "), std::string::npos) << message;
  EXPECT_NE(message.find("[GDCM: "), std::string::npos) << message;
}

TEST(Dicom, AHeaderClaimingAHugeFrameIsRefusedBeforeAnythingIsAllocated) {
  TempDir dir;
  DicomSpec spec;
  spec.stored = torch::zeros({2, 2}, torch::kInt64);
  spec.transfer_syntax = "1.2.840.10008.1.2.5";  // RLE: no length to check the claim against
  write_dicom(dir / "huge.dcm", spec);
  edit_tags(dir / "huge.dcm", [](DcmDataset& ds) -> OFCondition {
    for (const auto& tag : {DCM_Rows, DCM_Columns})
      if (ds.putAndInsertUint16(tag, 65535).bad()) return EC_IllegalCall;
    return ds.putAndInsertUint16(DCM_BitsAllocated, 32);
  });
  const auto message = testing::input_error_of([&] { read_dicom_frame(dir / "huge.dcm"); });
  EXPECT_NE(message.find("huge.dcm: DICOM: 65535 x 65535 x 1 samples of 32 bits: 16.0 GiB a "
                         "frame (pretext reads up to 2)"),
            std::string::npos)
      << message;
}

TEST(Dicom, AModalityLutMapsStoredValuesInsteadOfRescale) {
  TempDir dir;
  // Entries for stored 100..103; below maps to the first, above to the last (PS3.3 C.11.1).
  DicomSpec spec;
  spec.stored = torch::tensor({90, 100, 101, 102, 103, 4000}, torch::kInt64).view({2, 3});
  spec.modality_lut = {7, 500, 1500, 65535};
  spec.lut_first = 100;
  spec.slope = 100;  // ignored: the LUT wins (and the writer leaves rescale out)
  write_dicom(dir / "lut.dcm", spec);
  EXPECT_TRUE(read_dicom_header(dir / "lut.dcm").format.has_modality_lut);
  EXPECT_TRUE(
      torch::equal(read_dicom_frame(dir / "lut.dcm")[0],
                   torch::tensor({7.f, 7.f, 500.f, 1500.f, 65535.f, 65535.f}).view({2, 3})));
}

TEST(Dicom, PaddingIsAirAndMarkedInvalid) {
  TempDir dir;
  // CT outside the reconstruction circle: stored -2000 with intercept -1024 would read -3024 HU.
  DicomSpec spec;
  spec.stored = torch::tensor({-2000, 24, 1024, -1990, -2010, 2024}, torch::kInt64).view({2, 3});
  spec.is_signed = true;
  spec.bits_stored = 16;
  spec.padding_value = -2000;
  write_dicom(dir / "ct.dcm", spec);
  auto frame = decode_dicom_frame(dir / "ct.dcm");
  EXPECT_TRUE(
      torch::equal(frame.values[0],
                   torch::tensor({-1000.f, -1000.f, 0.f, -3014.f, -3034.f, 1000.f}).view({2, 3})))
      << frame.values;
  ASSERT_TRUE(frame.valid.defined());
  EXPECT_TRUE(
      torch::equal(frame.valid, torch::tensor({false, true, true, true, true, true}).view({2, 3})));
  // A range: every stored value between the two limits is padding.
  spec.padding_limit = -1990;
  write_dicom(dir / "range.dcm", spec);
  frame = decode_dicom_frame(dir / "range.dcm");
  EXPECT_TRUE(torch::equal(frame.valid,
                           torch::tensor({false, true, true, false, true, true}).view({2, 3})));
  // No padding declared: no mask.
  spec.padding_value.reset();
  spec.padding_limit.reset();
  write_dicom(dir / "plain.dcm", spec);
  EXPECT_FALSE(decode_dicom_frame(dir / "plain.dcm").valid.defined());
}

TEST(Dicom, ObjectsWithoutPixelsSayWhatTheyAre) {
  TempDir dir;
  const std::map<std::string, std::pair<std::string, std::string>> objects = {
      {"plan.dcm", {"1.2.840.10008.5.1.4.1.1.481.5", "RTPLAN"}},
      {"ecg.dcm", {"1.2.840.10008.5.1.4.1.1.9.1.1", "ECG"}},
      {"pr.dcm", {"1.2.840.10008.5.1.4.1.1.11.1", "PR"}}};
  const std::map<std::string, std::string> said = {
      {"plan.dcm", "an RT plan (RTPlanStorage), not an image"},
      {"ecg.dcm", "a waveform (TwelveLeadECGWaveformStorage), not an image"},
      {"pr.dcm", "a presentation state (GrayscaleSoftcopyPresentationStateStorage), not an image"}};
  for (const auto& [name, object] : objects) {
    DicomSpec spec;
    spec.stored = torch::zeros({1, 1}, torch::kInt64);
    spec.non_image_class = object.first;
    spec.modality = object.second;
    write_dicom(dir / name, spec);
    const auto message = testing::input_error_of([&] {
      scan_dicom({{dir / name, "", ""}}, OnBadFile::kSkip);
    });
    EXPECT_EQ(message, dir / name + ": DICOM: " + said.at(name));
    EXPECT_EQ(testing::input_error_of([&] { read_dicom_frame(dir / name); }), message);
  }
}

// Rewrites tags of `path` in place, keeping the pixel data as it is.
void edit_tags(const std::string& path, const std::function<OFCondition(DcmDataset&)>& edit) {
  DcmFileFormat file;
  // Everything in memory first: saving over the file would lose values still left in it.
  ASSERT_TRUE(file.loadFile(path.c_str()).good() && file.loadAllDataIntoMemory().good());
  ASSERT_TRUE(edit(*file.getDataset()).good());
  ASSERT_TRUE(file.saveFile(path.c_str(), file.getDataset()->getOriginalXfer()).good());
}

void set_photometric(const std::string& path, const char* photometric) {
  edit_tags(path, [&](DcmDataset& ds) {
    return ds.putAndInsertString(DCM_PhotometricInterpretation, photometric);
  });
}

void add_codestream_comment(const std::string& path, const std::string& payload) {
  DcmFileFormat file;
  ASSERT_TRUE(file.loadFile(path.c_str()).good() && file.loadAllDataIntoMemory().good());
  DcmDataset& ds = *file.getDataset();
  DcmElement* element = nullptr;
  ASSERT_TRUE(ds.findAndGetElement(DCM_PixelData, element).good());
  auto* pixels = OFstatic_cast(DcmPixelData*, element);
  DcmPixelSequence* sequence = nullptr;
  const E_TransferSyntax xfer = ds.getOriginalXfer();
  ASSERT_TRUE(pixels->getEncapsulatedRepresentation(xfer, nullptr, sequence).good());
  DcmPixelItem* item = nullptr;
  ASSERT_TRUE(sequence->getItem(item, 1).good());
  Uint8* data = nullptr;
  ASSERT_TRUE(item->getUint8Array(data).good());
  std::string codestream(reinterpret_cast<const char*>(data), item->getLength());
  ASSERT_EQ(codestream.substr(0, 4), std::string("\xff\x4f\xff\x51", 4));
  const size_t siz_end = 4 + ((static_cast<unsigned char>(codestream[4]) << 8) |
                              static_cast<unsigned char>(codestream[5]));
  const uint16_t length = static_cast<uint16_t>(4 + payload.size());
  std::string comment = std::string("\xff\x64", 2) + static_cast<char>(length >> 8) +
                        static_cast<char>(length & 0xff) + std::string("\x00\x01", 2) + payload;
  codestream.insert(siz_end, comment);
  if (codestream.size() % 2) codestream.push_back('\0');
  ASSERT_TRUE(item->putUint8Array(reinterpret_cast<const Uint8*>(codestream.data()),
                                  static_cast<unsigned long>(codestream.size()))
                  .good());
  ASSERT_TRUE(file.saveFile(path.c_str(), xfer).good());
}

}  // namespace
}  // namespace pretext::io
