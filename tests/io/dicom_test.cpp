#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "base/errors.h"
#include "io/catalog.h"
#include "io/dicom.h"
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
  EXPECT_EQ(scan.non_image_objects, 1);
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
      {"truncated.dcm", "cannot parse [DCMTK:"},
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
  // Only bad files: a clear error, not an empty series list.
  const auto none = testing::input_error_of([&] {
    scan_dicom({{dir / "truncated.dcm", "", ""}}, OnBadFile::kSkip);
  });
  EXPECT_NE(none.find("no readable DICOM image series"), std::string::npos) << none;
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
