#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "pipelines/launch.h"
#include "pipelines/process_group.h"

namespace pretext::testing {

/// Runs `body(group)` on `ranks` threads, each a rank of one Gloo job on 127.0.0.1; what each
/// threw ("" for none).
inline std::vector<std::string> on_ranks(
    int64_t ranks, std::chrono::milliseconds timeout,
    const std::function<void(pipelines::ProcessGroup&)>& body) {
  const int64_t port = pipelines::free_loopback_port();
  std::vector<std::string> errors(static_cast<size_t>(ranks));
  std::vector<std::thread> threads;
  for (int64_t r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      try {
        pipelines::World world;
        world.rank = r;
        world.world_size = ranks;
        world.master_port = port;
        pipelines::ProcessGroup group(world, timeout);
        body(group);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

}  // namespace pretext::testing
