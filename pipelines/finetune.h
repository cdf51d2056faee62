#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <torch/arg.h>
#include <torch/nn/modules/linear.h>

#include "base/fields.h"
#include "domains/augment.h"
#include "io/dataset.h"
#include "methods/backbone.h"
#include "pipelines/evaluation.h"
#include "pipelines/metrics.h"
#include "pipelines/optimizer_kind.h"
#include "pipelines/run_dir.h"
#include "pipelines/run_log.h"

namespace pretext::pipelines {

/// The `finetune` section: an encoder plus a linear head trained on a few labels.
///   FinetuneOptions().per_class(60).seeds({0, 1, 2}).epochs(50).lr(1e-3)
struct FinetuneOptions {
  /// Labelled examples drawn per class of the training split: this fraction of each class (at
  /// least one), or exactly `per_class` when that is above 0.
  TORCH_ARG(double, label_fraction) = 0.01;
  TORCH_ARG(int64_t, per_class) = 0;
  /// One fine-tuning per seed (its own labelled subset, head initialisation, order and
  /// augmentation); results are reported per seed and as mean and standard deviation.
  TORCH_ARG(std::vector<int64_t>, seeds) = {0};
  TORCH_ARG(int64_t, epochs) = 50;
  TORCH_ARG(int64_t, batch_size) = 64;
  /// "adam", "adamw", "sgd" (momentum 0.9) or "lars" (momentum 0.9, trust coefficient 0.001), at
  /// a constant learning rate.
  TORCH_ARG(OptimizerKind, optimizer) = OptimizerKind::kAdam;
  TORCH_ARG(double, lr) = 1e-3;
  /// Never applied to biases and normalisation weights.
  TORCH_ARG(double, weight_decay) = 0.0;
  /// Layer-wise learning-rate decay (BEiT, MAE): the encoder's layer l of L trains at
  /// lr * layer_decay^(L - l), the head at lr. 1 trains every layer at lr; ViTs use 0.65-0.75.
  TORCH_ARG(double, layer_decay) = 1.0;
  /// Train the head only, the encoder fixed in eval mode.
  TORCH_ARG(bool, freeze_encoder) = false;
  /// Score the validation split after every epoch, keep the best epoch's weights for the test and
  /// stop after `patience` epochs without improvement (0: run every epoch). Without validation
  /// the last epoch is tested.
  TORCH_ARG(bool, validate) = true;
  TORCH_ARG(int64_t, patience) = 0;
  /// Training augmentation: random resized crop from this area fraction and left-right flips;
  /// vertical flips and quarter turns follow the augment section.
  TORCH_ARG(double, crop_scale_min) = 0.5;
  TORCH_ARG(double, hflip_p) = 0.5;

 public:
  void visit_fields(FieldVisitor& visit);
};

/// The labelled training subset for one seed: stratified from `train`, reproducible from `seed`.
std::vector<int64_t> few_label_subset(const std::vector<int64_t>& labels,
                                      const std::vector<int64_t>& train,
                                      const FinetuneOptions& options, uint64_t seed);

/// An encoder with a linear classification head; parameter names "encoder.*" and "head.*".
class ClassifierImpl : public torch::nn::Module {
 public:
  ClassifierImpl(std::shared_ptr<methods::BackboneImpl> encoder, int64_t classes);
  torch::Tensor forward(const torch::Tensor& images);
  methods::BackboneImpl& encoder() { return *encoder_; }
  torch::nn::Linear& head() { return head_; }

 private:
  std::shared_ptr<methods::BackboneImpl> encoder_;
  torch::nn::Linear head_{nullptr};
};
TORCH_MODULE(Classifier);

/// What fine-tuning needs besides its options.
struct FinetuneContext {
  std::shared_ptr<const io::Dataset> dataset;
  /// A fresh copy of the starting encoder (pretrained or not) for every seed.
  std::function<std::shared_ptr<methods::BackboneImpl>()> make_encoder;
  /// The pretraining augmentation: size, normalisation and the domain's symmetries.
  domains::AugmentOptions augment;
  c10::Device device = c10::Device("cpu");
  int64_t workers = 2;
  int64_t eval_batch_size = 256;
  /// Where the best weights of each seed are kept (finetune_seed<S>.pt); empty keeps none.
  RunDir run_dir;
  RunLog* log = nullptr;
};

struct FinetuneSeedResult {
  int64_t seed = 0;
  int64_t labelled = 0;    ///< training examples
  int64_t epochs_run = 0;  ///< fewer than asked when stopped early
  int64_t best_epoch = 0;  ///< 1-based epoch whose weights were tested
  ClassificationMetrics test;
};

/// Fine-tunes for one seed on a few labels of `split.train`, selects on `split.val` (when
/// options.validate()) and scores `split.test`.
FinetuneSeedResult finetune_seed(const FinetuneContext& context, const EvalSplit& split,
                                 const FinetuneOptions& options, int64_t seed);

}  // namespace pretext::pipelines
