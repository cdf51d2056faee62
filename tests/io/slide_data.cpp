#include "tests/io/slide_data.h"

#include <tiffio.h>

#include <stdexcept>
#include <vector>

#include <torch/nn/functional.h>
#include <torch/types.h>

namespace pretext::testing {
namespace {

void write_level(TIFF* tiff, const torch::Tensor& rgb, const SlideSpec& spec, bool first) {
  const auto height = static_cast<uint32_t>(rgb.size(1));
  const auto width = static_cast<uint32_t>(rgb.size(2));
  TIFFSetField(tiff, TIFFTAG_SUBFILETYPE, first ? 0 : FILETYPE_REDUCEDIMAGE);
  TIFFSetField(tiff, TIFFTAG_IMAGEWIDTH, width);
  TIFFSetField(tiff, TIFFTAG_IMAGELENGTH, height);
  TIFFSetField(tiff, TIFFTAG_BITSPERSAMPLE, 8);
  TIFFSetField(tiff, TIFFTAG_SAMPLESPERPIXEL, 3);
  TIFFSetField(tiff, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(tiff, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
  TIFFSetField(tiff, TIFFTAG_TILEWIDTH, spec.tile);
  TIFFSetField(tiff, TIFFTAG_TILELENGTH, spec.tile);
  if (spec.jpeg) {
    TIFFSetField(tiff, TIFFTAG_COMPRESSION, COMPRESSION_JPEG);
    TIFFSetField(tiff, TIFFTAG_JPEGQUALITY, 90);
  } else {
    TIFFSetField(tiff, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
  }
  if (first && spec.vendor == "aperio") {
    const std::string description =
        "Aperio Image Library v11.2.1 \n" + std::to_string(width) + "x" + std::to_string(height) +
        " -> " + std::to_string(width) + "x" + std::to_string(height) +
        " - ;Aperio Image|AppMag = 20|MPP = " + std::to_string(spec.microns_per_pixel);
    TIFFSetField(tiff, TIFFTAG_IMAGEDESCRIPTION, description.c_str());
  }
  if (spec.vendor == "generic" && spec.microns_per_pixel > 0) {
    const float per_cm = static_cast<float>(10000.0 / spec.microns_per_pixel);
    TIFFSetField(tiff, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER);
    TIFFSetField(tiff, TIFFTAG_XRESOLUTION, per_cm);
    TIFFSetField(tiff, TIFFTAG_YRESOLUTION, per_cm);
  }
  const auto interleaved = rgb.permute({1, 2, 0}).contiguous();
  const auto* pixels = interleaved.data_ptr<uint8_t>();
  std::vector<uint8_t> tile(static_cast<size_t>(spec.tile * spec.tile * 3), 255);
  for (uint32_t y = 0; y < height; y += spec.tile)
    for (uint32_t x = 0; x < width; x += spec.tile) {
      std::fill(tile.begin(), tile.end(), 255);
      for (uint32_t r = 0; r < static_cast<uint32_t>(spec.tile) && y + r < height; ++r)
        for (uint32_t c = 0; c < static_cast<uint32_t>(spec.tile) && x + c < width; ++c)
          for (int s = 0; s < 3; ++s)
            tile[(r * spec.tile + c) * 3 + s] = pixels[((y + r) * width + x + c) * 3 + s];
      if (TIFFWriteTile(tiff, tile.data(), x, y, 0, 0) < 0)
        throw std::runtime_error("TIFFWriteTile failed");
    }
  if (!TIFFWriteDirectory(tiff)) throw std::runtime_error("TIFFWriteDirectory failed");
}

}  // namespace

void write_slide(const std::string& path, const SlideSpec& spec) {
  TIFF* tiff = TIFFOpen(path.c_str(), "w");
  if (!tiff) throw std::runtime_error(path + ": TIFFOpen failed");
  auto level = spec.level0.to(torch::kUInt8);
  for (int i = 0; i < spec.levels; ++i) {
    write_level(tiff, level, spec, i == 0);
    level = torch::nn::functional::avg_pool2d(level.unsqueeze(0).to(torch::kFloat32),
                                              torch::nn::functional::AvgPool2dFuncOptions(2))
                .squeeze(0)
                .round()
                .to(torch::kUInt8);
  }
  TIFFClose(tiff);
}

torch::Tensor tissue_image(int64_t height, int64_t width, int64_t top, int64_t left, int64_t bottom,
                           int64_t right) {
  auto image = torch::full({3, height, width}, 245, torch::kUInt8);
  // Haematoxylin-and-eosin pink-purple with a little texture.
  const auto texture = (torch::arange(height * width).view({height, width}) % 7).to(torch::kUInt8);
  const std::vector<int64_t> colour = {180, 90, 160};
  for (int64_t c = 0; c < 3; ++c)
    image[c].slice(0, top, bottom).slice(1, left, right) =
        (texture.slice(0, top, bottom).slice(1, left, right) * 3 + colour[c]).to(torch::kUInt8);
  return image;
}

}  // namespace pretext::testing
