#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace pretext::pipelines {

/// This process's place in a data-parallel job, as its launcher describes it in the environment.
struct World {
  int64_t rank = 0;
  int64_t world_size = 1;
  /// Rank and rank count on this machine: which GPU a rank takes, how many cores it shares.
  int64_t local_rank = 0;
  int64_t local_world_size = 1;
  /// Where rank 0's store listens (or the launcher agent's, for torchrun).
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 0;
  /// torchrun's agent hosts the store: every rank is a client, and keys live under
  /// /worker/attempt_<restart> as torch.distributed's env:// rendezvous puts them.
  bool agent_store = false;
  int64_t restart_count = 0;
  /// Who set the variables: "pretext launch", "torchrun", "srun", or "" for one process.
  std::string launcher;

  bool distributed() const { return world_size > 1; }
};

/// The variable named, or nullptr: std::getenv in the program, a table in tests.
using Environment = std::function<const char*(const char*)>;

/// The world of this process from its environment:
///   RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT (pretext launch,
///   torchrun, any env:// launcher; TORCHELASTIC_USE_AGENT_STORE and TORCHELASTIC_RESTART_COUNT
///   from torchrun's agent);
///   else SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE, the first host of
///   SLURM_NODELIST (MASTER_ADDR wins) and a port from SLURM_JOB_ID (MASTER_PORT wins);
///   else one process. Throws ConfigError naming the variable that is malformed or missing.
World world_from(const Environment& environment);
World world_from_process_environment();

/// The first host of a SLURM node list: "gpu[03-05,09],cpu01" -> "gpu03".
std::string first_slurm_host(const std::string& nodelist);

/// The port rank 0 listens on under SLURM without MASTER_PORT: one per job, in [20000, 40000).
int64_t slurm_port(int64_t job_id);

}  // namespace pretext::pipelines
