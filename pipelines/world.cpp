#include "pipelines/world.h"

#include <cstdlib>
#include <limits>

#include "base/errors.h"

namespace pretext::pipelines {
namespace {

std::string text_of(const Environment& environment, const char* name) {
  const char* value = environment(name);
  return value ? std::string(value) : std::string();
}

// An integer variable in [low, high]; `fallback` when unset.
int64_t integer(const Environment& environment, const char* name, int64_t fallback, int64_t low = 0,
                int64_t high = std::numeric_limits<int32_t>::max()) {
  const std::string text = text_of(environment, name);
  if (text.empty()) return fallback;
  size_t used = 0;
  int64_t value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || value < low || value > high)
    throw ConfigError("environment variable " + std::string(name) + "='" + text +
                      "': not an integer in [" + std::to_string(low) + ", " + std::to_string(high) +
                      "]");
  return value;
}

int64_t required(const Environment& environment, const char* name, int64_t low, int64_t high,
                 const std::string& launcher) {
  if (text_of(environment, name).empty())
    throw ConfigError("environment variable " + std::string(name) + " is not set (" + launcher +
                      " sets it for every rank)");
  return integer(environment, name, 0, low, high);
}

void check_rank(const World& world, const char* rank_name, const char* size_name) {
  if (world.rank >= world.world_size)
    throw ConfigError("environment: " + std::string(rank_name) + "=" + std::to_string(world.rank) +
                      " is not below " + size_name + "=" + std::to_string(world.world_size));
  if (world.local_rank >= world.local_world_size)
    throw ConfigError("environment: local rank " + std::to_string(world.local_rank) +
                      " is not below the local world size " +
                      std::to_string(world.local_world_size));
}

World env_world(const Environment& environment) {
  World world;
  world.launcher = text_of(environment, "PRETEXT_LAUNCH").empty() ? "torchrun" : "pretext launch";
  world.world_size = required(environment, "WORLD_SIZE", 1, 1 << 20, world.launcher);
  world.rank = required(environment, "RANK", 0, 1 << 20, world.launcher);
  world.local_rank = integer(environment, "LOCAL_RANK", world.rank, 0, 1 << 20);
  world.local_world_size = integer(environment, "LOCAL_WORLD_SIZE", world.world_size, 1, 1 << 20);
  check_rank(world, "RANK", "WORLD_SIZE");
  if (!world.distributed()) return world;
  world.master_addr = text_of(environment, "MASTER_ADDR");
  if (world.master_addr.empty())
    throw ConfigError("environment variable MASTER_ADDR is not set (" + world.launcher +
                      " sets it for every rank)");
  world.master_port = required(environment, "MASTER_PORT", 1, 65535, world.launcher);
  const std::string agent = text_of(environment, "TORCHELASTIC_USE_AGENT_STORE");
  world.agent_store = agent == "True" || agent == "true" || agent == "1";
  world.restart_count = integer(environment, "TORCHELASTIC_RESTART_COUNT", 0);
  return world;
}

World slurm_world(const Environment& environment) {
  World world;
  world.launcher = "srun";
  world.world_size = required(environment, "SLURM_NTASKS", 1, 1 << 20, world.launcher);
  world.rank = required(environment, "SLURM_PROCID", 0, 1 << 20, world.launcher);
  world.local_rank = integer(environment, "SLURM_LOCALID", 0, 0, 1 << 20);
  // SLURM_NTASKS_PER_NODE is set with --ntasks-per-node; SLURM_TASKS_PER_NODE ("4(x2),3") always:
  // its first count is this node's when the nodes are filled alike.
  const std::string tasks = text_of(environment, "SLURM_TASKS_PER_NODE");
  const std::string first_count = tasks.substr(0, tasks.find_first_not_of("0123456789"));
  world.local_world_size =
      integer(environment, "SLURM_NTASKS_PER_NODE",
              first_count.empty() ? world.world_size : std::stoll(first_count), 1, 1 << 20);
  check_rank(world, "SLURM_PROCID", "SLURM_NTASKS");
  if (!world.distributed()) return world;
  world.master_addr = text_of(environment, "MASTER_ADDR");
  if (world.master_addr.empty()) {
    const std::string nodes = text_of(environment, "SLURM_NODELIST").empty()
                                  ? text_of(environment, "SLURM_JOB_NODELIST")
                                  : text_of(environment, "SLURM_NODELIST");
    if (nodes.empty())
      throw ConfigError(
          "environment variable SLURM_NODELIST is not set (srun sets it; or set "
          "MASTER_ADDR to rank 0's host)");
    world.master_addr = first_slurm_host(nodes);
  }
  world.master_port = integer(environment, "MASTER_PORT", 0, 1, 65535);
  if (world.master_port == 0)
    world.master_port = slurm_port(required(environment, "SLURM_JOB_ID", 0,
                                            std::numeric_limits<int64_t>::max(), world.launcher));
  return world;
}

}  // namespace

std::string first_slurm_host(const std::string& nodelist) {
  const size_t end = nodelist.find_first_of(",[");
  const std::string prefix = nodelist.substr(0, end);
  if (end == std::string::npos || nodelist[end] == ',') return prefix;
  // "gpu[03-05,09]": the prefix and the first number of the range as written (zero padding kept).
  const size_t close = nodelist.find_first_of(",-]", end + 1);
  return prefix + nodelist.substr(end + 1, close - end - 1);
}

int64_t slurm_port(int64_t job_id) { return 20000 + job_id % 20000; }

World world_from(const Environment& environment) {
  if (!text_of(environment, "WORLD_SIZE").empty() || !text_of(environment, "RANK").empty())
    return env_world(environment);
  if (!text_of(environment, "SLURM_PROCID").empty()) return slurm_world(environment);
  return World{};
}

World world_from_process_environment() {
  return world_from([](const char* name) { return std::getenv(name); });
}

}  // namespace pretext::pipelines
