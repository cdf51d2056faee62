#pragma once

#include <cstdint>
#include <string>
#include <utility>

namespace pretext::pipelines {

/// Every file of a run directory, named in one place (as LevelDB's db/filename.h does for a
/// database): commands, the trainer, fine-tuning and the report write and read them through this.
///   const RunDir run(config.run.dir());
///   save_checkpoint(run.checkpoint(), ...);  // "runs/ct_mae/checkpoint.pt"
class RunDir {
 public:
  RunDir() = default;
  explicit RunDir(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }
  bool empty() const { return path_.empty(); }
  /// Creates the directory and its parents; throws InputError naming it when it cannot.
  void create() const;

  std::string config() const { return file("config.yaml"); }  ///< the resolved config pretrained
  std::string log() const { return file("run.log"); }
  std::string metrics() const { return file("metrics.csv"); }       ///< a row per logged step
  std::string checkpoint() const { return file("checkpoint.pt"); }  ///< the latest pretraining
  std::string band_statistics() const { return file("band_stats.json"); }
  std::string thumbnails() const { return file("thumbnails"); }  ///< folder: slides' tissue maps
  std::string figures_json() const { return file("figures.json"); }    ///< what pretraining drew
  std::string views_png() const { return file("views.png"); }          ///< augmented views
  std::string attention_png() const { return file("attention.png"); }  ///< a ViT's attention
  std::string attention() const { return file("attention"); }  ///< folder: one overlay per image
  /// The attention overlay of the report's image `index`, in attention().
  std::string attention_overlay(int64_t index) const {
    return file("attention/" + std::to_string(index) + ".png");
  }
  std::string features() const { return file("features.pt"); }
  std::string knn_json() const { return file("knn.json"); }
  std::string knn_csv() const { return file("knn.csv"); }
  std::string probe_json() const { return file("probe.json"); }
  std::string probe_csv() const { return file("probe.csv"); }
  std::string probe_svg() const { return file("probe.svg"); }
  std::string finetune_json() const { return file("finetune.json"); }
  std::string finetune_csv() const { return file("finetune.csv"); }
  /// The best validation epoch of fine-tuning seed `seed`.
  std::string finetune_checkpoint(int64_t seed) const {
    return file("finetune_seed" + std::to_string(seed) + ".pt");
  }
  std::string encoder() const { return file("encoder.pt"); }
  std::string report() const { return file("report.html"); }

 private:
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  std::string path_;
};

}  // namespace pretext::pipelines
