#include "methods/registry.h"

#include <functional>
#include <stdexcept>
#include <utility>

#include "base/errors.h"
#include "methods/autoencoder.h"
#include "methods/beit.h"
#include "methods/byol.h"
#include "methods/decorrelation.h"
#include "methods/dino.h"
#include "methods/ibot.h"
#include "methods/jigsaw.h"
#include "methods/mae.h"
#include "methods/moco.h"
#include "methods/pixels.h"
#include "methods/resnet.h"
#include "methods/rotation.h"
#include "methods/simclr.h"
#include "methods/simmim.h"
#include "methods/simsiam.h"
#include "methods/vit.h"
#include "methods/vqvae.h"

namespace pretext::methods {
namespace {

template <typename Options>
class BackboneOf : public BackboneSpec {
 public:
  using Build = std::function<std::shared_ptr<BackboneImpl>(Options, int64_t)>;
  BackboneOf(Options options, Build build)
      : options_(std::move(options)), build_(std::move(build)) {}
  void visit_fields(FieldVisitor& visit) override { options_.visit_fields(visit); }
  std::shared_ptr<BackboneImpl> build(int64_t in_channels) const override {
    return build_(options_, in_channels);
  }

 protected:
  Options options_;

 private:
  Build build_;
};

class ViTSpec : public BackboneOf<ViTOptions> {
 public:
  ViTSpec()
      : BackboneOf<ViTOptions>(ViTOptions(), [](ViTOptions options, int64_t in_channels) {
          return std::make_shared<ViTImpl>(options.in_channels(in_channels));
        }) {}
  std::optional<std::pair<std::string, std::string>> mismatch() const override {
    return options_.mismatch();
  }
  int64_t input_size() const override { return options_.image_size(); }
};

template <typename Options, typename Impl>
class MethodOf : public MethodSpec {
 public:
  explicit MethodOf(Options defaults = Options()) : options_(std::move(defaults)) {}
  void visit_fields(FieldVisitor& visit) override { options_.visit_fields(visit); }
  std::shared_ptr<MethodImpl> build(
      const std::function<std::shared_ptr<BackboneImpl>()>& make_backbone,
      const LoadRun& /*load_run*/) const override {
    return std::make_shared<Impl>(make_backbone(), options_);
  }

 protected:
  Options options_;
};

class RotationSpec : public MethodOf<RotationOptions, RotationImpl> {
 public:
  bool needs_upright_views() const override { return true; }
};

// An online network and its moving average (DINO's student and teacher, MoCo's query and key
// encoders, BYOL's online and target networks): two backbones of one layout.
template <typename Options, typename Impl>
class TwoBackbonesOf : public MethodSpec {
 public:
  void visit_fields(FieldVisitor& visit) override { options_.visit_fields(visit); }
  std::shared_ptr<MethodImpl> build(
      const std::function<std::shared_ptr<BackboneImpl>()>& make_backbone,
      const LoadRun& /*load_run*/) const override {
    auto online = make_backbone();
    return std::make_shared<Impl>(online, make_backbone(), options_);
  }

 protected:
  Options options_;
};

// A spec whose options say which backbones they fit (Options::mismatch(backbone)).
template <typename Spec>
class Checked : public Spec {
 public:
  using Spec::Spec;
  std::optional<std::pair<std::string, std::string>> mismatch(
      const std::string& backbone) const override {
    return this->options_.mismatch(backbone);
  }
};
using MaeSpec = Checked<MethodOf<MaeOptions, MaeImpl>>;

// BEiT: the ViT and the tokenizer of another run.
class BeitSpec : public MethodSpec {
 public:
  void visit_fields(FieldVisitor& visit) override { options_.visit_fields(visit); }
  std::optional<std::pair<std::string, std::string>> mismatch(
      const std::string& backbone) const override {
    return options_.mismatch(backbone);
  }
  std::shared_ptr<MethodImpl> build(
      const std::function<std::shared_ptr<BackboneImpl>()>& make_backbone,
      const LoadRun& load_run) const override {
    std::shared_ptr<MethodImpl> loaded;
    try {
      loaded = load_run(options_.tokenizer(), "vqvae");
    } catch (const std::runtime_error& e) {
      // InputError or ConfigError naming the checkpoint, told at method.tokenizer.
      throw ConfigError("method", "tokenizer", e.what());
    }
    auto tokenizer = std::dynamic_pointer_cast<VqVaeImpl>(loaded);
    if (!tokenizer)
      throw ConfigError("method", "tokenizer", options_.tokenizer() + ": not a vqvae run");
    return std::make_shared<BeitImpl>(make_backbone(), tokenizer, options_);
  }

 private:
  BeitOptions options_;
};

std::unique_ptr<BackboneSpec> resnet(int64_t depth) {
  return std::make_unique<BackboneOf<ResNetOptions>>(
      ResNetOptions(depth), [](ResNetOptions options, int64_t in_channels) {
        return std::make_shared<ResNetImpl>(options.in_channels(in_channels));
      });
}

// The whole list of backbones and methods, in one place so static linking cannot drop one.
const std::vector<std::pair<std::string, std::function<std::unique_ptr<BackboneSpec>()>>>&
backbones() {
  static const std::vector<std::pair<std::string, std::function<std::unique_ptr<BackboneSpec>()>>>
      list = {
          {"resnet18", [] { return resnet(18); }},
          {"resnet34", [] { return resnet(34); }},
          {"resnet50", [] { return resnet(50); }},
          {"vit", [] { return std::make_unique<ViTSpec>(); }},
          {"pixels",
           [] {
             return std::make_unique<BackboneOf<PixelsOptions>>(
                 PixelsOptions(), [](PixelsOptions options, int64_t in_channels) {
                   return std::make_shared<PixelsImpl>(options.in_channels(in_channels));
                 });
           }},
      };
  return list;
}

const std::vector<std::pair<std::string, std::function<std::unique_ptr<MethodSpec>()>>>& methods() {
  static const std::vector<std::pair<std::string, std::function<std::unique_ptr<MethodSpec>()>>>
      list = {
          {"simclr", [] { return std::make_unique<MethodOf<SimClrOptions, SimClrImpl>>(); }},
          {"mae", [] { return std::make_unique<MaeSpec>(); }},
          {"dino", [] { return std::make_unique<TwoBackbonesOf<DinoOptions, DinoImpl>>(); }},
          {"moco", [] { return std::make_unique<TwoBackbonesOf<MocoOptions, MocoImpl>>(); }},
          {"byol", [] { return std::make_unique<TwoBackbonesOf<ByolOptions, ByolImpl>>(); }},
          {"simsiam", [] { return std::make_unique<MethodOf<SimSiamOptions, SimSiamImpl>>(); }},
          {"barlow_twins",
           [] { return std::make_unique<MethodOf<BarlowTwinsOptions, BarlowTwinsImpl>>(); }},
          {"vicreg", [] { return std::make_unique<MethodOf<VicRegOptions, VicRegImpl>>(); }},
          {"autoencoder",
           [] { return std::make_unique<MethodOf<AutoencoderOptions, AutoencoderImpl>>(); }},
          {"rotation", [] { return std::make_unique<RotationSpec>(); }},
          {"jigsaw",
           [] { return std::make_unique<Checked<MethodOf<JigsawOptions, JigsawImpl>>>(); }},
          {"simmim",
           [] { return std::make_unique<Checked<MethodOf<SimMimOptions, SimMimImpl>>>(); }},
          {"ibot",
           [] { return std::make_unique<Checked<TwoBackbonesOf<IbotOptions, IbotImpl>>>(); }},
          {"vqvae", [] { return std::make_unique<Checked<MethodOf<VqVaeOptions, VqVaeImpl>>>(); }},
          {"beit", [] { return std::make_unique<BeitSpec>(); }},
          // SatMAE: MAE with its temporal encoding on (band groups are the ViT's).
          {"satmae",
           [] { return std::make_unique<MaeSpec>(MaeOptions().temporal_encoding(true)); }},
      };
  return list;
}

template <typename List>
auto find(const List& list, const std::string& name, const char* what) {
  std::string known;
  for (const auto& [entry, make] : list) {
    if (entry == name) return make();
    known += (known.empty() ? "" : ", ") + entry;
  }
  throw ConfigError("unknown " + std::string(what) + " '" + name + "' (known: " + known + ")");
}

template <typename List>
std::vector<std::string> names(const List& list) {
  std::vector<std::string> out;
  for (const auto& entry : list) out.push_back(entry.first);
  return out;
}

}  // namespace

std::unique_ptr<BackboneSpec> backbone_spec(const std::string& name) {
  return find(backbones(), name, "backbone");
}
std::unique_ptr<MethodSpec> method_spec(const std::string& name) {
  return find(methods(), name, "method");
}
std::vector<std::string> backbone_names() { return names(backbones()); }
std::vector<std::string> method_names() { return names(methods()); }

}  // namespace pretext::methods
