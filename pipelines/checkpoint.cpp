#include "pipelines/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include "base/errors.h"
#include "pipelines/pickle.h"

namespace pretext::pipelines {
namespace fs = std::filesystem;
namespace {

void sync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) throw InputError(path + ": cannot open to flush (" + std::strerror(errno) + ")");
  const int status = ::fsync(fd);
  ::close(fd);
  if (status != 0) throw InputError(path + ": flush to disk failed (" + std::strerror(errno) + ")");
}

}  // namespace

void replace_file(const std::string& path, const std::function<void(const std::string&)>& write) {
  const std::string temporary = path + ".tmp";
  try {
    write(temporary);
  } catch (const c10::Error& e) {
    throw InputError(temporary + ": cannot write (" + e.what_without_backtrace() + ")");
  }
  sync_path(temporary, O_RDONLY);
  std::error_code error;
  fs::rename(temporary, path, error);
  if (error) throw InputError(path + ": cannot replace (" + error.message() + ")");
  const auto folder = fs::path(path).parent_path();
  sync_path(folder.empty() ? "." : folder.string(), O_RDONLY | O_DIRECTORY);
}

void write_file(const std::string& path, std::string_view bytes) {
  replace_file(path, [&](const std::string& temporary) {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out.flush()) throw InputError(temporary + ": cannot write");
  });
}

void save_pickle(const std::string& path, const c10::IValue& value) {
  // torch::pickle_save, except that dicts and lists are written untagged: a tagged one is rebuilt
  // through torch.jit._pickle.restore_type_tag, which torch.load's weights_only mode (the
  // default from PyTorch 2.6) refuses to call. Lists of ints, floats, bools or tensors still
  // pickle as torch.jit._pickle.build_*list, refused too: files for Python hold dicts of tensors
  // and generic (string) lists only.
  std::vector<char> pickled;
  torch::jit::Pickler pickler(
      [&](const char* bytes, size_t size) { pickled.insert(pickled.end(), bytes, bytes + size); },
      /*tensor_table=*/nullptr, /*type_renamer=*/nullptr, /*memoized_class_types=*/nullptr,
      /*get_tensor_id=*/nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(value);
  pickler.stop();
  std::string archive;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* bytes, size_t size) {
    archive.append(static_cast<const char*>(bytes), size);
    return size;
  });
  torch::jit::writeArchiveAndTensors("data", pickled.data(), pickled.size(), pickler.tensorData(),
                                     writer);
  writer.writeEndOfFile();
  write_file(path, archive);
}

c10::IValue load_pickle(const std::string& path, const std::string& what) {
  if (!std::ifstream(path, std::ios::binary)) throw InputError(path + ": cannot open " + what);
  try {
    return read_torch_archive(path);
  } catch (const c10::Error& e) {
    throw InputError(path + ": not " + what + " (" + e.what_without_backtrace() + ")");
  } catch (const std::exception& e) {
    throw InputError(path + ": not " + what + " (" + e.what() + ")");
  }
}

void save_checkpoint(const std::string& path, torch::nn::Module& model,
                     torch::optim::Optimizer* optimizer, const TrainState& state,
                     const std::string& config_text) {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model_archive, optimizer_archive;
  model.save(model_archive);
  archive.write("model", model_archive);
  if (optimizer) {
    optimizer->save(optimizer_archive);
    archive.write("optimizer", optimizer_archive);
  }
  archive.write("step", torch::tensor(state.step));
  archive.write("epoch", torch::tensor(state.epoch));
  archive.write("batch_in_epoch", torch::tensor(state.batch_in_epoch));
  archive.write("loss_scale", torch::tensor(state.loss_scale.scale, torch::kFloat64));
  archive.write("loss_scale_good_steps", torch::tensor(state.loss_scale.good_steps));
  archive.write("world_size", torch::tensor(state.world_size));
  archive.write("config", c10::IValue(config_text));

  replace_file(path, [&](const std::string& temporary) { archive.save_to(temporary); });
}

std::string checkpoint_config(const std::string& path) {
  std::error_code error;
  if (!fs::is_regular_file(path, error)) throw InputError(path + ": no checkpoint here");
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path, torch::kCPU);
    c10::IValue config;
    archive.read("config", config);
    return config.toStringRef();
  } catch (const c10::Error& e) {
    throw InputError(path + ": not a pretext checkpoint (" + e.what_without_backtrace() + ")");
  }
}

TrainState load_checkpoint(const std::string& path, torch::nn::Module& model,
                           torch::optim::Optimizer* optimizer, const c10::Device& device,
                           std::string* config_text) {
  std::error_code error;
  if (!fs::is_regular_file(path, error)) throw InputError(path + ": no checkpoint here");
  TrainState state;
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path, device);
    torch::serialize::InputArchive model_archive;
    archive.read("model", model_archive);
    model.load(model_archive);
    if (optimizer) {
      torch::serialize::InputArchive optimizer_archive;
      archive.read("optimizer", optimizer_archive);
      optimizer->load(optimizer_archive);
    }
    torch::Tensor value;
    archive.read("step", value);
    state.step = value.item<int64_t>();
    archive.read("epoch", value);
    state.epoch = value.item<int64_t>();
    archive.read("batch_in_epoch", value);
    state.batch_in_epoch = value.item<int64_t>();
    // Checkpoints from before run.precision have no loss scale: they trained in fp32.
    // (A fresh tensor each: reading into a defined one keeps its dtype.)
    torch::Tensor scale, good_steps;
    if (archive.try_read("loss_scale", scale)) state.loss_scale.scale = scale.item<double>();
    if (archive.try_read("loss_scale_good_steps", good_steps))
      state.loss_scale.good_steps = good_steps.item<int64_t>();
    torch::Tensor world_size;
    if (archive.try_read("world_size", world_size)) state.world_size = world_size.item<int64_t>();
    if (config_text) {
      c10::IValue config;
      archive.read("config", config);
      *config_text = config.toStringRef();
    }
  } catch (const c10::Error& e) {
    throw InputError(path + ": not a checkpoint this model can load (" +
                     e.what_without_backtrace() + ")");
  }
  return state;
}

}  // namespace pretext::pipelines
