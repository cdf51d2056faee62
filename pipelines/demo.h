#pragma once

#include <cstdint>
#include <string>

#include <torch/arg.h>

namespace pretext::pipelines {

/// `pretext demo`: a labelled GeoTIFF tile set generated on the spot, SimCLR pretraining on it,
/// and k-NN of the random-init against the pretrained encoder.
struct DemoOptions {
  /// Folder for the tiles, the config and the run.
  TORCH_ARG(std::string, dir) = "demo";
  /// Pretraining steps (batch 256); the default takes about two minutes on 2 cores.
  TORCH_ARG(int64_t, steps) = 120;
  /// Tiles per class: 80% train, 20% test.
  TORCH_ARG(int64_t, tiles_per_class) = 500;
  TORCH_ARG(int64_t, seed) = 0;
};

/// The four demo classes differ by the kind of texture (stripes, crossed gratings, blobs, spots)
/// under random scale, orientation, gain, offset, band mix and noise, so raw intensity and
/// frequency say little about the class. Writes root/{train,test}/<class>/NNNN.tif, 3-band uint8
/// GeoTIFFs in UTM 32N.
void generate_demo_tiles(const std::string& root, int64_t tiles_per_class, int64_t seed);

/// Runs the whole demo and prints the comparison table on stdout; returns {random, pretrained}
/// k-NN top-1.
std::pair<double, double> run_demo(const DemoOptions& options);

}  // namespace pretext::pipelines
