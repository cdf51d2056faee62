#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pretext::pipelines {

/// `pretext launch -n N [--] pretrain ...`: runs `pretext pretrain ...` as N data-parallel ranks
/// on this machine. Rank 0 hosts the c10d store on a free loopback port; every rank gets RANK,
/// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT, as torchrun sets them.
/// Their output is streamed line by line with a "[rank r] " prefix. When a rank fails, the others
/// are given `grace_s` seconds to end by themselves (their next collective fails at once when a
/// peer died), then stopped. Returns the exit status of the first rank that failed (128 + the
/// signal for a rank killed by one), 0 when all succeeded.
int launch(int64_t ranks, std::vector<std::string> arguments, int64_t grace_s = 10);

/// A loopback port nothing listens on now (the kernel's choice for port 0).
int free_loopback_port();

}  // namespace pretext::pipelines
