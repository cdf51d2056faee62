// pretext on a GPU, checked against the CPU and timed beside PyTorch from Python:
//
//   build/gpu_check [--device cuda] [--size 224] [--batch 32] [--steps 10] [--python python3]
//   build/gpu_check --smoke --device cpu --require-python   (toy sizes: checks the program, not a
//                                                            GPU; the test suite runs this)
//
// 1. One training step of every method (small ResNet-18s and ViTs) from the same weights and
//    views on the CPU and on the device, TF32 off: the loss, every gradient, and every weight and
//    buffer after the step agree within kTolerance (relative to each tensor's largest value).
// 2. A checkpoint written from the device loads on the CPU with the device's values, bit for bit.
// 3. Training-step throughput at size² (ResNet-50 SimCLR, ViT-S/16 DINO and MAE) in fp32, TF32 and
//    bf16 autocast, beside the same models and steps in PyTorch (bench/gpu_check.py) in this run,
//    as a ratio, with the peak device memory of each.
// Exits 1 when a check of 1 or 2 fails, or with --require-python when gpu_check.py gave no number.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/optim/sgd.h>
#include <torch/types.h>

#include "base/torch_compat.h"
#include "methods/autoencoder.h"
#include "methods/beit.h"
#include "methods/byol.h"
#include "methods/decorrelation.h"
#include "methods/dino.h"
#include "methods/ibot.h"
#include "methods/jigsaw.h"
#include "methods/mae.h"
#include "methods/moco.h"
#include "methods/resnet.h"
#include "methods/rotation.h"
#include "methods/simclr.h"
#include "methods/simmim.h"
#include "methods/simsiam.h"
#include "methods/vit.h"
#include "methods/vqvae.h"
#include "pipelines/checkpoint.h"
#include "pipelines/system.h"

namespace {

using namespace pretext;
using Method = std::shared_ptr<methods::MethodImpl>;
using Tensors = std::map<std::string, torch::Tensor>;

// CPU against GPU in fp32 without TF32: kernels differ in summation order only.
constexpr double kTolerance = 1e-3;

struct Options {
  std::string device = "cuda";
  int64_t size = 224, batch = 32, steps = 10;
  std::string python = "python3";
  bool smoke = false, require_python = false;
};

/// A method to build, by the name gpu_check.py knows it.
struct Case {
  std::string name;
  std::function<Method(int64_t size)> build;
  int64_t views = 2;
};

Method simclr(int64_t depth, double width, bool small_stem) {
  auto backbone = std::make_shared<methods::ResNetImpl>(
      methods::ResNetOptions(depth).width_multiplier(width).small_stem(small_stem));
  return std::make_shared<methods::SimClrImpl>(backbone, methods::SimClrOptions());
}

methods::ViTOptions vit(int64_t size, bool small) {
  auto options = methods::ViTOptions().image_size(size);
  if (small) options.patch_size(4).dim(64).depth(2).heads(4);
  return options;
}

Method dino(int64_t size, bool small) {
  auto options = methods::DinoOptions().local_crops(0);
  if (small) options.out_dim(256).hidden_dim(128).bottleneck_dim(32);
  return std::make_shared<methods::DinoImpl>(std::make_shared<methods::ViTImpl>(vit(size, small)),
                                             std::make_shared<methods::ViTImpl>(vit(size, small)),
                                             options);
}

Method mae(int64_t size, bool small) {
  auto options = methods::MaeOptions();
  if (small) options.decoder_dim(32).decoder_depth(1);
  return std::make_shared<methods::MaeImpl>(
      std::make_shared<methods::ViTImpl>(vit(size, small).class_token(false).pool("mean")),
      options);
}

std::shared_ptr<methods::ResNetImpl> small_resnet() {
  return std::make_shared<methods::ResNetImpl>(
      methods::ResNetOptions(18).width_multiplier(0.25).small_stem(true));
}

std::shared_ptr<methods::ViTImpl> small_vit(int64_t size, bool class_token = true) {
  return std::make_shared<methods::ViTImpl>(
      vit(size, true).class_token(class_token).pool(class_token ? "cls" : "mean"));
}

/// Every method of the registry at small sizes (one step each in part 1).
std::vector<Case> small_cases() {
  using namespace methods;
  return {
      {"simclr_resnet18", [](int64_t) { return simclr(18, 0.25, true); }},
      {"mae_small_vit", [](int64_t size) { return mae(size, true); }, 1},
      {"dino_small_vit", [](int64_t size) { return dino(size, true); }},
      {"moco_v2",
       [](int64_t) -> Method {
         return std::make_shared<MocoImpl>(small_resnet(), small_resnet(),
                                           MocoOptions()
                                               .version(2)
                                               .queue_size(64)
                                               .shuffle_bn_splits(2)
                                               .projection_dim(32)
                                               .projection_hidden_dim(64));
       }},
      {"moco_v3",
       [](int64_t size) -> Method {
         return std::make_shared<MocoImpl>(small_vit(size), small_vit(size),
                                           MocoOptions().version(3).projection_dim(32));
       }},
      {"byol",
       [](int64_t) -> Method {
         return std::make_shared<ByolImpl>(small_resnet(), small_resnet(),
                                           ByolOptions().projection_dim(32));
       }},
      {"simsiam",
       [](int64_t) -> Method {
         return std::make_shared<SimSiamImpl>(small_resnet(), SimSiamOptions().projection_dim(64));
       }},
      {"barlow_twins",
       [](int64_t) -> Method {
         return std::make_shared<BarlowTwinsImpl>(small_resnet(),
                                                  BarlowTwinsOptions().projection_dim(64));
       }},
      {"vicreg",
       [](int64_t) -> Method {
         return std::make_shared<VicRegImpl>(small_resnet(), VicRegOptions().projection_dim(64));
       }},
      {"autoencoder",
       [](int64_t) -> Method {
         return std::make_shared<AutoencoderImpl>(
             small_resnet(), AutoencoderOptions().noise_std(0.1).mask_ratio(0.2));
       },
       1},
      {"rotation",
       [](int64_t) -> Method {
         return std::make_shared<RotationImpl>(small_resnet(), RotationOptions());
       },
       1},
      {"jigsaw",
       [](int64_t) -> Method {
         return std::make_shared<JigsawImpl>(small_resnet(), JigsawOptions());
       },
       1},
      {"simmim",
       [](int64_t size) -> Method {
         return std::make_shared<SimMimImpl>(small_vit(size, false),
                                             SimMimOptions().mask_patch_size(8));
       },
       1},
      {"ibot",
       [](int64_t size) -> Method {
         auto options = IbotOptions().patch_out_dim(256);
         options.dino().out_dim(256).hidden_dim(128).bottleneck_dim(32).local_crops(0);
         return std::make_shared<IbotImpl>(small_vit(size), small_vit(size), options);
       }},
      {"vqvae",
       [](int64_t size) -> Method {
         return std::make_shared<VqVaeImpl>(small_vit(size, false),
                                            VqVaeOptions().codebook_size(64).decoder_dim(32));
       },
       1},
      {"beit",
       [](int64_t size) -> Method {
         auto tokenizer = std::make_shared<VqVaeImpl>(
             small_vit(size, false), VqVaeOptions().codebook_size(64).decoder_dim(32));
         return std::make_shared<BeitImpl>(small_vit(size, false), tokenizer,
                                           BeitOptions().tokenizer("gpu_check"));
       },
       1},
      {"satmae",
       [](int64_t size) -> Method {
         return std::make_shared<MaeImpl>(
             small_vit(size, false),
             MaeOptions().temporal_encoding(true).decoder_dim(32).decoder_depth(1));
       },
       1},
  };
}

const Case& small_case(const std::string& name) {
  static const auto cases = small_cases();
  for (const auto& c : cases)
    if (c.name == name) return c;
  throw std::invalid_argument("no case " + name);
}

std::vector<Case> throughput_cases() {
  return {{"simclr_resnet50", [](int64_t) { return simclr(50, 1.0, false); }},
          {"dino_vits16", [](int64_t size) { return dino(size, false); }},
          {"mae_vits16", [](int64_t size) { return mae(size, false); }, 1}};
}

/// The method built from `seed` on `device`, laid out as the trainer runs it.
Method build_on(const Case& c, int64_t size, const torch::Device& device) {
  torch::manual_seed(0);
  auto method = c.build(size);
  method->to(device);
  methods::to_channels_last(*method);
  return method;
}

std::vector<torch::Tensor> views_on(const Case& c, int64_t batch, int64_t size,
                                    const torch::Device& device) {
  torch::manual_seed(1);
  std::vector<torch::Tensor> views;
  for (int64_t i = 0; i < c.views; ++i)
    views.push_back(torch::rand({batch, 3, size, size})
                        .to(device)
                        .contiguous(torch::MemoryFormat::ChannelsLast));
  return views;
}

torch::optim::SGD sgd(const Method& method) {
  std::vector<torch::Tensor> trained;
  for (const auto& p : method->parameters())
    if (p.requires_grad()) trained.push_back(p);
  return torch::optim::SGD(trained, torch::optim::SGDOptions(0.05).momentum(0.9));
}

/// One optimiser step as the trainer takes it; the loss, not read back.
torch::Tensor train_step(methods::MethodImpl& method, torch::optim::Optimizer& optimizer,
                         const std::vector<torch::Tensor>& views, bool bf16, int64_t step,
                         Tensors* gradients = nullptr) {
  optimizer.zero_grad();
  methods::StepOutput out;
  {
    std::optional<compat::Autocast> autocast;
    if (bf16) autocast.emplace(views[0].device().type(), torch::kBFloat16);
    out = method.step(views);
  }
  out.loss.backward();
  if (gradients)
    for (const auto& p : method.named_parameters())
      if (p.value().grad().defined()) (*gradients)[p.key()] = p.value().grad().cpu();
  optimizer.step();
  method.after_optimizer_step(step, 100);
  return out.loss.detach();
}

Tensors state_of(torch::nn::Module& module) {
  Tensors out;
  for (const auto& p : module.named_parameters()) out[p.key()] = p.value().detach().cpu();
  for (const auto& b : module.named_buffers()) out[b.key()] = b.value().cpu();
  return out;
}

/// The largest difference between same-named tensors relative to the first's largest magnitude,
/// and the name where it is.
std::pair<double, std::string> largest_difference(const Tensors& expected, const Tensors& actual) {
  std::pair<double, std::string> worst = {0.0, ""};
  for (const auto& [name, e] : expected) {
    const auto a = actual.at(name).to(e.scalar_type());
    const double scale = std::max(e.abs().max().item<double>(), 1e-12);
    const double difference = (a - e).abs().max().item<double>() / scale;
    if (difference > worst.first) worst = {difference, name};
  }
  return worst;
}

bool report(const std::string& what, const std::pair<double, std::string>& difference) {
  const bool ok = difference.first <= kTolerance;
  std::printf("  %-28s %.2e %s%s\n", what.c_str(), difference.first, ok ? "ok" : "FAILED at ",
              ok ? "" : difference.second.c_str());
  return ok;
}

/// Part 1: one step on the CPU and on the device from the same weights and views.
bool same_step(const Case& c, int64_t batch, int64_t size, const torch::Device& device) {
  std::printf("%s, batch %ld at %ld²:\n", c.name.c_str(), static_cast<long>(batch),
              static_cast<long>(size));
  const torch::Device cpu(torch::kCPU);
  auto on_cpu = build_on(c, size, cpu), on_device = build_on(c, size, device);
  auto cpu_optimizer = sgd(on_cpu), device_optimizer = sgd(on_device);
  Tensors cpu_gradients, device_gradients;
  const auto cpu_loss =
      train_step(*on_cpu, cpu_optimizer, views_on(c, batch, size, cpu), false, 1, &cpu_gradients);
  const auto device_loss = train_step(
      *on_device, device_optimizer, views_on(c, batch, size, device), false, 1, &device_gradients);
  bool ok = report("loss", largest_difference({{"loss", cpu_loss}}, {{"loss", device_loss.cpu()}}));
  ok = report("gradients", largest_difference(cpu_gradients, device_gradients)) && ok;
  return report("weights and buffers after",
                largest_difference(state_of(*on_cpu), state_of(*on_device))) &&
         ok;
}

/// Part 2: a checkpoint written from the device, loaded into a fresh method on the CPU.
bool checkpoint_loads_on_cpu(const Case& c, int64_t batch, int64_t size,
                             const torch::Device& device) {
  auto on_device = build_on(c, size, device);
  auto optimizer = sgd(on_device);
  train_step(*on_device, optimizer, views_on(c, batch, size, device), false, 1);
  const auto path =
      (std::filesystem::temp_directory_path() / "pretext_gpu_check_checkpoint.pt").string();
  pipelines::save_checkpoint(path, *on_device, &optimizer, pipelines::TrainState{1}, "gpu_check");
  auto on_cpu = build_on(c, size, torch::kCPU);
  auto cpu_optimizer = sgd(on_cpu);
  pipelines::load_checkpoint(path, *on_cpu, &cpu_optimizer, torch::kCPU);
  std::filesystem::remove(path);
  const auto expected = state_of(*on_device), actual = state_of(*on_cpu);
  bool ok = true;
  for (const auto& [name, e] : expected) ok = ok && torch::equal(e, actual.at(name));
  std::printf("%s checkpoint from %s loads on the CPU: %s\n", c.name.c_str(), device.str().c_str(),
              ok ? "ok, bit for bit" : "FAILED");
  return ok;
}

struct Speed {
  double images_per_s = 0.0, peak_mib = 0.0;
};

enum class Mode { kFp32, kTf32, kBf16 };
const char* name_of(Mode mode) {
  return mode == Mode::kFp32 ? "fp32" : mode == Mode::kTf32 ? "tf32" : "bf16";
}

/// Part 3, pretext's side: images (each two views, one for MAE) per second over `steps` steps
/// after 3 of warm-up.
Speed pretext_speed(const Case& c, Mode mode, const Options& o, const torch::Device& device) {
  // cuDNN's autotuner for TF32 and bf16; TF32 itself only for the TF32 rows (as gpu_check.py).
  pipelines::configure_cuda(mode != Mode::kFp32);
  if (mode == Mode::kBf16) compat::allow_tf32(false);
  auto method = build_on(c, o.size, device);
  auto optimizer = sgd(method);
  const auto views = views_on(c, o.batch, o.size, device);
  pipelines::reset_peak_device_memory(device);
  int64_t step = 1;
  for (int i = 0; i < 3; ++i) train_step(*method, optimizer, views, mode == Mode::kBf16, step++);
  train_step(*method, optimizer, views, mode == Mode::kBf16, step++)
      .item();  // the queue drained before timing
  const auto start = std::chrono::steady_clock::now();
  torch::Tensor loss;
  for (int64_t i = 0; i < o.steps; ++i)
    loss = train_step(*method, optimizer, views, mode == Mode::kBf16, step++);
  loss.item();  // waits for the device
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return {static_cast<double>(o.batch * o.steps) / seconds,
          static_cast<double>(pipelines::peak_device_memory(device)) / (1 << 20)};
}

Speed python_speed(const Case& c, Mode mode, const Options& o) {
  const std::string command = o.python + " " PRETEXT_BENCH_DIR "/gpu_check.py --model " + c.name +
                              " --precision " + name_of(mode) + " --size " +
                              std::to_string(o.size) + " --batch " + std::to_string(o.batch) +
                              " --steps " + std::to_string(o.steps) + " --device " + o.device;
  // One run prints both numbers, on lines of their own.
  std::string output;
  Speed speed;
  if (FILE* pipe = popen((command + " 2>&1").c_str(), "r")) {
    char buffer[512];
    while (std::fgets(buffer, sizeof buffer, pipe)) {
      const std::string line = buffer;
      output += line;
      for (const auto& [prefix, value] :
           {std::pair{"images_per_s=", &speed.images_per_s}, {"peak_mib=", &speed.peak_mib}})
        if (line.rfind(prefix, 0) == 0) *value = std::atof(line.c_str() + std::strlen(prefix));
    }
    pclose(pipe);
  }
  if (speed.images_per_s <= 0) std::printf("  (gpu_check.py said: %s)\n", output.c_str());
  return speed;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    const auto value = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (flag == "--device") o.device = value();
    if (flag == "--size") o.size = std::atoll(value().c_str());
    if (flag == "--batch") o.batch = std::atoll(value().c_str());
    if (flag == "--steps") o.steps = std::atoll(value().c_str());
    if (flag == "--python") o.python = value();
    if (flag == "--smoke") o.smoke = true;
    if (flag == "--require-python") o.require_python = true;
  }
  if (o.smoke) {
    o.size = 32;
    o.batch = 2;
    o.steps = 1;
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each line as it comes, also into a pipe or file
  const auto o = parse(argc, argv);
  const torch::Device device(o.device);
  pipelines::configure_threads(0);
  std::printf("%s; device %s\n", pipelines::torch_summary().c_str(), device.str().c_str());

  std::printf("\n1. One step on the CPU and on %s (fp32, TF32 off), relative differences:\n",
              device.str().c_str());
  compat::allow_tf32(false);
  bool ok = true;
  for (const auto& c : small_cases()) ok = same_step(c, 8, 32, device) && ok;

  std::printf("\n2. Checkpoints\n");
  ok = checkpoint_loads_on_cpu(small_case("dino_small_vit"), 8, 32, device) && ok;

  std::printf("\n3. Training-step throughput at %ld², batch %ld, %ld steps (images/s; peak MiB)\n",
              static_cast<long>(o.size), static_cast<long>(o.batch), static_cast<long>(o.steps));
  std::printf("  %-16s %-5s %10s %10s %7s %9s %9s\n", "model", "mode", "pretext", "PyTorch",
              "ratio", "peak", "PyTorch");
  for (const auto& c : throughput_cases())
    for (const auto mode : {Mode::kFp32, Mode::kTf32, Mode::kBf16}) {
      const auto ours = pretext_speed(c, mode, o, device);
      const auto theirs = python_speed(c, mode, o);
      std::printf("  %-16s %-5s %10.1f %10.1f %7.2f %9.0f %9.0f\n", c.name.c_str(), name_of(mode),
                  ours.images_per_s, theirs.images_per_s,
                  theirs.images_per_s > 0 ? ours.images_per_s / theirs.images_per_s : 0.0,
                  ours.peak_mib, theirs.peak_mib);
      ok = ok && (theirs.images_per_s > 0 || !o.require_python);
    }
  std::printf("\n%s\n", ok ? "all checks passed" : "a check FAILED");
  return ok ? 0 : 1;
}
