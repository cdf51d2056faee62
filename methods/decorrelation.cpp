#include "methods/decorrelation.h"

#include <torch/nn/functional.h>

#include "methods/collectives.h"
#include "methods/losses.h"

namespace pretext::methods {
namespace F = torch::nn::functional;

namespace {

// Every element of a square matrix off its diagonal, flattened.
torch::Tensor off_diagonal(const torch::Tensor& m) {
  return m.masked_select(~torch::eye(m.size(0), m.options().dtype(torch::kBool)));
}

void visit_projector(FieldVisitor& visit, int64_t& dim, int64_t& hidden, int64_t& layers) {
  visit("projection_dim", dim, Check::between(1, 1 << 16));
  visit("projection_hidden_dim", hidden, Check::between(1, 1 << 16));
  visit("projection_layers", layers, Check::between(1, 8));
}

// The projector an Options struct names (its in_dim comes from the backbone).
template <typename Options>
ProjectionHeadOptions projector_of(const Options& options) {
  return ProjectionHeadOptions(0, options.projection_dim())
      .hidden_dim(options.projection_hidden_dim())
      .layers(options.projection_layers());
}

}  // namespace

DecorrelationMethodImpl::DecorrelationMethodImpl(std::shared_ptr<BackboneImpl> backbone,
                                                 ProjectionHeadOptions projector)
    : backbone_(std::move(backbone)) {
  register_module("backbone", backbone_);
  projector.in_dim(backbone_->feature_dim());
  projector_ = register_module("projector", ProjectionHead(projector));
}

StepOutput DecorrelationMethodImpl::step(const std::vector<torch::Tensor>& views) {
  TORCH_CHECK(views.size() == 2, "this method takes 2 views, got ", views.size());
  auto z1 = projector_->forward(backbone_->forward(views[0]));
  auto z2 = projector_->forward(backbone_->forward(views[1]));
  if (group()) {
    z1 = all_gather_with_grad(*group(), z1);
    z2 = all_gather_with_grad(*group(), z2);
  }
  StepOutput out;
  out.loss = loss(z1, z2);
  out.logs["embedding_std"] = embedding_std(z1);
  return out;
}

void BarlowTwinsOptions::visit_fields(FieldVisitor& visit) {
  visit_projector(visit, projection_dim_, projection_hidden_dim_, projection_layers_);
  visit("off_diagonal_weight", off_diagonal_weight_, Check::at_least(0));
}

double BarlowTwinsOptions::lambda() const {
  return off_diagonal_weight_ > 0 ? off_diagonal_weight_
                                  : 0.0051 * 8192 / static_cast<double>(projection_dim_);
}

torch::Tensor barlow_twins_loss(const torch::Tensor& z1, const torch::Tensor& z2, double lambda) {
  TORCH_CHECK(z1.sizes() == z2.sizes() && z1.dim() == 2 && z1.size(0) > 1,
              "barlow_twins_loss: views ", z1.sizes(), " and ", z2.sizes());
  const auto standardise = [](const torch::Tensor& z) {
    return (z - z.mean(0)) / torch::sqrt(z.var(0, /*unbiased=*/false) + 1e-5);
  };
  const auto c = torch::mm(standardise(z1).t(), standardise(z2)) / z1.size(0);
  return (1 - torch::diagonal(c)).pow(2).sum() + lambda * off_diagonal(c).pow(2).sum();
}

BarlowTwinsImpl::BarlowTwinsImpl(std::shared_ptr<BackboneImpl> backbone,
                                 const BarlowTwinsOptions& options)
    : DecorrelationMethodImpl(std::move(backbone), projector_of(options)), options_(options) {}

torch::Tensor BarlowTwinsImpl::loss(const torch::Tensor& z1, const torch::Tensor& z2) const {
  return barlow_twins_loss(z1, z2, options_.lambda());
}

void VicRegOptions::visit_fields(FieldVisitor& visit) {
  visit_projector(visit, projection_dim_, projection_hidden_dim_, projection_layers_);
  visit("invariance_weight", invariance_weight_, Check::at_least(0));
  visit("variance_weight", variance_weight_, Check::at_least(0));
  visit("covariance_weight", covariance_weight_, Check::at_least(0));
}

torch::Tensor vicreg_loss(const torch::Tensor& z1, const torch::Tensor& z2,
                          const VicRegOptions& options) {
  TORCH_CHECK(z1.sizes() == z2.sizes() && z1.dim() == 2 && z1.size(0) > 1, "vicreg_loss: views ",
              z1.sizes(), " and ", z2.sizes());
  const int64_t rows = z1.size(0), dims = z1.size(1);
  const auto invariance = F::mse_loss(z1, z2);
  const auto variance = [](const torch::Tensor& centred) {
    return F::relu(1 - torch::sqrt(centred.var(0) + 1e-4)).mean();
  };
  const auto covariance = [&](const torch::Tensor& centred) {
    return off_diagonal(torch::mm(centred.t(), centred) / (rows - 1)).pow(2).sum() / dims;
  };
  const auto c1 = z1 - z1.mean(0), c2 = z2 - z2.mean(0);
  return options.invariance_weight() * invariance +
         options.variance_weight() * (variance(c1) + variance(c2)) / 2 +
         options.covariance_weight() * (covariance(c1) + covariance(c2));
}

VicRegImpl::VicRegImpl(std::shared_ptr<BackboneImpl> backbone, const VicRegOptions& options)
    : DecorrelationMethodImpl(std::move(backbone), projector_of(options)), options_(options) {}

torch::Tensor VicRegImpl::loss(const torch::Tensor& z1, const torch::Tensor& z2) const {
  return vicreg_loss(z1, z2, options_);
}

}  // namespace pretext::methods
