#include "pipelines/process_group.h"

#include <chrono>
#include <limits>
#include <map>

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "base/errors.h"
#include "pipelines/config.h"

namespace pretext::pipelines {

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
};

namespace {

std::vector<uint8_t> bytes_of(const std::string& text) { return {text.begin(), text.end()}; }

// What Gloo can carry: bf16 (autocast's CPU dtype), which it lacks, as float (exact both ways).
at::Tensor wire_format(const at::Tensor& t) {
  return t.scalar_type() == at::kBFloat16 ? t.to(at::kFloat) : t;
}

// Adds the seconds of its scope to a total.
class Timed {
 public:
  explicit Timed(double& total) : total_(total), start_(std::chrono::steady_clock::now()) {}
  ~Timed() {
    total_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  Timed(const Timed&) = delete;
  Timed& operator=(const Timed&) = delete;

 private:
  double& total_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

ProcessGroup::ProcessGroup(const World& world, std::chrono::milliseconds timeout)
    : world_(world), timeout_(timeout), impl_(std::make_unique<Impl>()) {
  doing_ = "joining the job at " + world.master_addr + ":" + std::to_string(world.master_port);
  try {
    c10d::TCPStoreOptions options;
    options.port = static_cast<uint16_t>(world.master_port);
    options.isServer = world.rank == 0 && !world.agent_store;
    options.numWorkers = static_cast<size_t>(world.world_size);
    options.waitWorkers = !world.agent_store;
    options.timeout = timeout;
    c10::intrusive_ptr<c10d::Store> store =
        c10::make_intrusive<c10d::TCPStore>(world.master_addr, options);
    // torch.distributed's env:// rendezvous under torchrun's agent keeps a run's keys under its
    // attempt; pretext's own keys get a prefix of their own so that nothing else collides.
    if (world.agent_store)
      store = c10::make_intrusive<c10d::PrefixStore>(
          "/worker/attempt_" + std::to_string(world.restart_count), store);
    impl_->store = c10::make_intrusive<c10d::PrefixStore>("pretext", store);
    auto gloo_options = c10d::ProcessGroupGloo::Options::create(timeout);
    gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(
        world.master_addr == "localhost" ? "127.0.0.1" : world.master_addr));
    impl_->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(
        impl_->store, static_cast<int>(world.rank), static_cast<int>(world.world_size),
        gloo_options);
  } catch (const std::exception& error) {
    fail(error);
  }
  doing_ = "starting";
}

ProcessGroup::~ProcessGroup() = default;

void ProcessGroup::fail(const std::exception& error) const {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&error);
  std::string reason = c10_error ? c10_error->what_without_backtrace() : error.what();
  if (const size_t end = reason.find('\n'); end != std::string::npos) reason.resize(end);
  throw DistributedError("rank " + std::to_string(world_.rank) + " of " +
                         std::to_string(world_.world_size) + ": " + doing_ + ": " + reason +
                         " (waited at most " + std::to_string(timeout_.count() / 1000) +
                         " s, run.timeout_s)");
}

void ProcessGroup::check_same(const std::string& name, const std::string& text) {
  std::string theirs = text;
  try {
    if (world_.rank == 0) impl_->store->set(name, bytes_of(text));
    const auto value = impl_->store->get(name);
    theirs.assign(value.begin(), value.end());
  } catch (const std::exception& error) {
    fail(error);
  }
  // Every rank learns which ranks differ, so that all of them stop, each with the reason.
  auto differs = at::zeros({world_.world_size}, at::kInt);
  differs[world_.rank] = theirs == text ? 0 : 1;
  sum({differs});
  std::string ranks;
  for (int64_t r = 0; r < world_.world_size; ++r)
    if (differs[r].item<int>() != 0) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
  if (ranks.empty()) return;
  const auto difference = first_difference(text, theirs);
  throw ConfigError("rank " + ranks + " of " + std::to_string(world_.world_size) +
                    " runs a different " + name + " than rank 0" +
                    (difference
                         ? " (line " + std::to_string(difference->line) + " is '" +
                               difference->theirs + "' there, '" + difference->ours + "' here)"
                         : "") +
                    "; every rank must run the same command and config");
}

void ProcessGroup::broadcast(const std::vector<at::Tensor>& tensors) {
  const Timed timed(collective_seconds_);
  std::map<at::ScalarType, std::vector<at::Tensor>> by_dtype;
  for (const auto& t : tensors) by_dtype[t.scalar_type()].push_back(t);
  try {
    for (auto& [dtype, group] : by_dtype) {
      std::vector<at::Tensor> flat = {at::cat([&] {
        std::vector<at::Tensor> parts;
        for (const auto& t : group) parts.push_back(t.detach().reshape(-1));
        return parts;
      }())};
      impl_->gloo->broadcast(flat)->wait();
      int64_t at = 0;
      for (const auto& t : group) {
        t.detach().copy_(flat[0].narrow(0, at, t.numel()).view(t.sizes()));
        at += t.numel();
      }
    }
  } catch (const std::exception& error) {
    fail(error);
  }
}

void ProcessGroup::all_reduce_flat(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes,
                                   bool mean) {
  const Timed timed(collective_seconds_);
  std::map<at::ScalarType, std::vector<at::Tensor>> by_dtype;
  for (const auto& t : tensors)
    if (t.defined()) by_dtype[t.scalar_type()].push_back(t);
  const auto reduce = [&](const std::vector<at::Tensor>& bucket) {
    std::vector<at::Tensor> parts;
    for (const auto& t : bucket) parts.push_back(t.reshape(-1));
    std::vector<at::Tensor> flat = {wire_format(at::cat(parts))};
    impl_->gloo->allreduce(flat)->wait();
    if (mean) flat[0].div_(static_cast<double>(world_.world_size));
    int64_t at = 0;
    for (const auto& t : bucket) {
      t.copy_(flat[0].narrow(0, at, t.numel()).view(t.sizes()));
      at += t.numel();
    }
  };
  try {
    for (auto& [dtype, group] : by_dtype) {
      std::vector<at::Tensor> bucket;
      int64_t bytes = 0;
      for (const auto& t : group) {
        bucket.push_back(t);
        bytes += t.numel() * static_cast<int64_t>(t.element_size());
        if (bytes >= bucket_bytes) {
          reduce(bucket);
          bucket.clear();
          bytes = 0;
        }
      }
      if (!bucket.empty()) reduce(bucket);
    }
  } catch (const std::exception& error) {
    fail(error);
  }
}

void ProcessGroup::average(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes) {
  all_reduce_flat(tensors, bucket_bytes, /*mean=*/true);
}

void ProcessGroup::sum(const std::vector<at::Tensor>& tensors) {
  all_reduce_flat(tensors, std::numeric_limits<int64_t>::max(), /*mean=*/false);
}

at::Tensor ProcessGroup::all_gather(const at::Tensor& tensor) {
  const Timed timed(collective_seconds_);
  // Gloo copies bytes: every buffer in the plain row-major layout (not channels-last).
  std::vector<at::Tensor> input = {wire_format(tensor).contiguous()};
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (int64_t r = 0; r < world_.world_size; ++r)
    outputs[0].push_back(at::empty_like(input[0], at::MemoryFormat::Contiguous));
  try {
    impl_->gloo->allgather(outputs, input)->wait();
  } catch (const std::exception& error) {
    fail(error);
  }
  return at::cat(outputs[0]).to(tensor.scalar_type());
}

void ProcessGroup::barrier() {
  const Timed timed(collective_seconds_);
  try {
    impl_->gloo->monitoredBarrier(c10d::BarrierOptions(), /*waitAllRanks=*/true);
  } catch (const std::exception& error) {
    fail(error);
  }
}

}  // namespace pretext::pipelines
