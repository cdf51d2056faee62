#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "base/errors.h"
#include "domains/slices.h"
#include "io/catalog.h"
#include "io/volume.h"
#include "tests/io/dicom_data.h"
#include "tests/io/test_data.h"

namespace pretext::domains {
namespace {
namespace fs = std::filesystem;
using testing::TempDir;

SliceDataset slices_of(const std::string& folder, SliceDatasetOptions options) {
  return SliceDataset(io::Catalog::from_folder(folder), options);
}

TEST(SliceDataset, OneExamplePerSliceInAnatomicalOrderWithSlabs) {
  TempDir dir;
  testing::write_ct_series(dir.path(), 5, "1.2.840.10008.1.2.1");
  const auto hu = testing::known_hu(5);
  const auto data = slices_of(dir.path(), SliceDatasetOptions().image_size(8).slab(3));
  ASSERT_EQ(data.size(), 5);
  EXPECT_EQ(data.channels(), 3);
  // Slab of slice 0 repeats slice 0 below the first slice; slice 2 is centred.
  EXPECT_TRUE(torch::equal(data.get(0).pixels, torch::stack({hu[0], hu[0], hu[1]})));
  EXPECT_TRUE(torch::equal(data.get(2).pixels, hu.slice(0, 1, 4)));
  EXPECT_TRUE(torch::equal(data.get(4).pixels, torch::stack({hu[3], hu[4], hu[4]})));
  EXPECT_EQ(data.get(0).label, -1);
  EXPECT_NE(data.summary().find("1 DICOM series (1 patient), 0 volumes, 5 slices"),
            std::string::npos)
      << data.summary();
  // Resampled to image_size: a constant slice stays constant.
  const auto small = slices_of(dir.path(), SliceDatasetOptions().image_size(4));
  EXPECT_EQ(small.get(1).pixels.sizes(), (std::vector<int64_t>{1, 4, 4}));
}

TEST(SliceDataset, ReadingASliceTouchesOnlyItsOwnFiles) {
  TempDir dir;
  testing::write_ct_series(dir.path(), 6, "1.2.840.10008.1.2.4.70");
  const auto data = slices_of(dir.path(), SliceDatasetOptions().image_size(8));
  const std::string keep = data.item(3).path;
  for (int64_t i = 0; i < data.size(); ++i)
    if (data.item(i).path != keep) fs::remove(data.item(i).path);
  EXPECT_TRUE(torch::equal(data.get(3).pixels[0], testing::known_hu(6)[3]));
  EXPECT_THROW(data.get(2), InputError);  // its file is gone, and it says so
}

TEST(SliceDataset, BackgroundSlicesAreRejectedAndCounted) {
  TempDir dir;
  // Slices 0 and 1 all air (-1000 HU); 2..4 body (0 HU).
  for (int64_t s = 0; s < 5; ++s) {
    testing::DicomSpec spec;
    spec.stored = torch::full({8, 8}, s < 2 ? 24 : 1024, torch::kInt64);
    spec.z = 2.5 * static_cast<double>(s);
    write_dicom(dir / ("s" + std::to_string(s) + ".dcm"), spec);
  }
  const auto data =
      slices_of(dir.path(), SliceDatasetOptions().image_size(8).min_body_fraction(0.5));
  for (int64_t i = 0; i < data.size(); ++i)
    EXPECT_EQ(data.get(i).pixels.min().item<float>(), 0.0f) << "example " << i;
  EXPECT_NE(data.skipped_note().find("rejected 2 slices"), std::string::npos)
      << data.skipped_note();
  // The verdict is kept: a second epoch rejects nothing new.
  for (int64_t i = 0; i < data.size(); ++i) data.get(i);
  EXPECT_NE(data.skipped_note().find("rejected 2 slices"), std::string::npos);
  // Without rejection every slice is its own.
  const auto all = slices_of(dir.path(), SliceDatasetOptions().image_size(8));
  EXPECT_EQ(all.get(0).pixels.max().item<float>(), -1000.0f);
  EXPECT_EQ(all.skipped_note(), "");
}

TEST(SliceDataset, PaddingIsNeverBodyAndReadsAsAir) {
  TempDir dir;
  // Unsigned 12-bit CT padded with 4095 (3071 HU read plainly: bone). Slices 0 and 1 are 3/4
  // padding around soft tissue, slices 2..4 all soft tissue (40 HU).
  for (int64_t s = 0; s < 5; ++s) {
    testing::DicomSpec spec;
    auto stored = torch::full({8, 8}, 1064, torch::kInt64);
    if (s < 2) stored.slice(0, 0, 6).fill_(4095), stored.slice(1, 0, 5).fill_(4095);
    spec.stored = stored;
    spec.padding_value = 4095;
    spec.z = 2.5 * static_cast<double>(s);
    write_dicom(dir / ("s" + std::to_string(s) + ".dcm"), spec);
  }
  const auto data = slices_of(
      dir.path(), SliceDatasetOptions().image_size(8).min_body_fraction(0.5).body_threshold(-500));
  for (int64_t i = 0; i < data.size(); ++i)
    EXPECT_EQ(data.get(i).pixels.min().item<float>(), 40.0f) << "example " << i;
  EXPECT_NE(data.skipped_note().find("rejected 2 slices"), std::string::npos)
      << data.skipped_note();
  // Read plainly, padding is air (-1000 HU), whatever the stored value would say.
  const auto all = slices_of(dir.path(), SliceDatasetOptions().image_size(8));
  EXPECT_EQ(all.get(0).pixels.min().item<float>(), -1000.0f);
  EXPECT_EQ(all.get(0).pixels.max().item<float>(), 40.0f);
}

TEST(SliceDataset, PretrainingReplacesSlicesWhosePixelsCannotBeDecoded) {
  TempDir dir;
  testing::write_ct_series(dir.path(), 4, "1.2.840.10008.1.2.4.90");
  // One slice's codestream broken after its header was read fine: the width in its SIZ marker
  // overwritten, as in pydicom's JPEG2000-embedded-sequence-delimiter.dcm.
  {
    std::ifstream in(dir / "IM1001.dcm", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    const auto siz = bytes.find(std::string("\xff\x4f\xff\x51", 4));
    ASSERT_NE(siz, std::string::npos);
    bytes.replace(siz + 6, 4, std::string("\xfe\xff\xdd\xe0", 4));
    testing::write_text(dir / "IM1001.dcm", bytes);
  }
  const auto strict = slices_of(dir.path(), SliceDatasetOptions().image_size(8));
  int64_t broken = -1;
  for (int64_t i = 0; i < strict.size(); ++i)
    if (strict.item(i).path == dir / "IM1001.dcm") broken = i;
  ASSERT_GE(broken, 0);
  const auto message = testing::input_error_of([&] { strict.get(broken); });
  EXPECT_NE(message.find(dir / "IM1001.dcm: DICOM: cannot decode frame 0"), std::string::npos)
      << message;

  const auto lenient = slices_of(dir.path(), SliceDatasetOptions()
                                                 .image_size(8)
                                                 .on_bad_file(io::OnBadFile::kSkip)
                                                 .replace_undecodable(true));
  const auto hu = testing::known_hu(4);
  for (int64_t i = 0; i < lenient.size(); ++i) {
    // In place (the loader's path) and through get(): a readable slice of the series either way.
    auto out = torch::empty({1, 8, 8});
    lenient.get_into(i, out);
    bool one_of_the_slices = false;
    for (int64_t s = 0; s < 4; ++s)
      one_of_the_slices = one_of_the_slices || torch::equal(out[0], hu[s]);
    EXPECT_TRUE(one_of_the_slices) << "example " << i;
    if (i != broken) {
      EXPECT_TRUE(torch::equal(lenient.get(i).pixels, out)) << "example " << i;
    }
  }
  EXPECT_NE(lenient.skipped_note().find("replaced 1 slice whose pixels cannot be decoded (first: " +
                                        dir / "IM1001.dcm"),
            std::string::npos)
      << lenient.skipped_note();
}

TEST(SliceDataset, VolumesInEveryFormatSliceAlongTheChosenAxis) {
  TempDir dir;
  io::Volume volume;
  volume.voxels = torch::arange(4 * 5 * 6, torch::kFloat32).view({4, 5, 6}) - 50;
  volume.spacing = {0.8, 0.9, 3.0};
  volume.origin = {-10, 20, 5};
  volume.direction = {1, 0, 0, 0, -1, 0, 0, 0, 1};
  fs::create_directories(dir / "train/liver");
  for (const char* name : {"a.nii.gz", "b.nii", "c.nrrd", "d.mha"}) {
    const std::string path = dir / (std::string("train/liver/") + name);
    io::write_volume(path, volume);
    const auto back = io::read_volume(path);
    EXPECT_TRUE(torch::equal(back.voxels, volume.voxels)) << name;
    for (size_t a = 0; a < 3; ++a) {
      EXPECT_NEAR(back.spacing[a], volume.spacing[a], 1e-5) << name;
      EXPECT_NEAR(back.origin[a], volume.origin[a], 1e-4) << name;
    }
    for (size_t a = 0; a < 9; ++a) EXPECT_NEAR(back.direction[a], volume.direction[a], 1e-6);
    EXPECT_EQ(io::read_volume_shape(path), (std::array<int64_t, 3>{4, 5, 6}));
  }
  const auto axial = slices_of(dir.path(), SliceDatasetOptions().image_size(5));
  EXPECT_EQ(axial.size(), 16);
  EXPECT_EQ(axial.class_names(), std::vector<std::string>{"liver"});
  EXPECT_EQ(axial.item(1).split, "train");
  EXPECT_NE(axial.item(1).path.find("a.nii.gz#slice=1"), std::string::npos);
  // Axis 0 slices are [5, 6]; resampled to 5 x 5, so compare at native size through axis 2.
  const auto sagittal = slices_of(dir.path(), SliceDatasetOptions().image_size(4).axis(2));
  EXPECT_EQ(sagittal.size(), 24);
  const auto slice = sagittal.read_slab(0, 3);
  EXPECT_TRUE(torch::equal(slice[0], volume.voxels.select(2, 3)));
  EXPECT_TRUE(torch::equal(volume.sub_volume({1, 2, 3}, {2, 2, 2}),
                           volume.voxels.slice(0, 1, 3).slice(1, 2, 4).slice(2, 3, 5)));
}

TEST(SliceDataset, ALabelsColumnIsRefusedNamingTheManifest) {
  TempDir dir;
  io::Volume volume;
  volume.voxels = torch::zeros({2, 4, 4});
  io::write_volume(dir / "a.nii", volume);
  testing::write_text(dir / "data.csv", "path,labels\na.nii,liver;lesion\n");
  try {
    SliceDataset(io::Catalog::from_manifest(dir / "data.csv"), SliceDatasetOptions());
    ADD_FAILURE() << "slices took a labels column";
  } catch (const InputError& error) {
    const std::string message = error.what();
    EXPECT_EQ(message.rfind(dir / "data.csv: slices take one label", 0), 0) << message;
  }
}

TEST(SliceDataset, TruncatedVolumesNameTheFileAndTheReason) {
  TempDir dir;
  io::Volume volume;
  volume.voxels = torch::rand({16, 32, 32});
  for (const char* name : {"v.nii", "v.nii.gz", "v.nrrd", "v.mha"}) {
    io::write_volume(dir / name, volume);
    testing::truncate_file(dir / name, 0.5);
    try {
      io::read_volume(dir / name);
      ADD_FAILURE() << name << ": a truncated volume was read";
    } catch (const InputError& error) {
      EXPECT_NE(std::string(error.what()).find(dir / name + ": "), std::string::npos)
          << error.what();
      EXPECT_NE(std::string(error.what()).find("cannot read"), std::string::npos) << error.what();
    }
  }
}

}  // namespace
}  // namespace pretext::domains
