#include "pipelines/launch.h"

#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <iostream>
#include <string>

#include "base/errors.h"

namespace pretext::pipelines {
namespace {

volatile sig_atomic_t g_forward_signal = 0;

void remember_signal(int signal_number) { g_forward_signal = signal_number; }

struct Rank {
  pid_t pid = -1;
  int output = -1;      // read end of the rank's stdout and stderr
  std::string pending;  // a line not yet complete
  bool running = true;
};

pid_t start_rank(int64_t rank, int64_t ranks, int port, const std::vector<std::string>& arguments,
                 int* output) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0)
    throw std::runtime_error(std::string("launch: cannot create a pipe: ") + std::strerror(errno));
  const pid_t pid = ::fork();
  if (pid < 0)
    throw std::runtime_error(std::string("launch: cannot start a rank: ") + std::strerror(errno));
  if (pid == 0) {
    ::dup2(pipe_fds[1], STDOUT_FILENO);
    ::dup2(pipe_fds[1], STDERR_FILENO);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    const auto set = [](const char* name, const std::string& value) {
      ::setenv(name, value.c_str(), 1);
    };
    set("RANK", std::to_string(rank));
    set("LOCAL_RANK", std::to_string(rank));
    set("WORLD_SIZE", std::to_string(ranks));
    set("LOCAL_WORLD_SIZE", std::to_string(ranks));
    set("MASTER_ADDR", "127.0.0.1");
    set("MASTER_PORT", std::to_string(port));
    set("PRETEXT_LAUNCH", "1");
    std::vector<char*> argv;
    std::string program = "pretext";
    argv.push_back(program.data());
    std::vector<std::string> copies = arguments;
    for (auto& a : copies) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv("/proc/self/exe", argv.data());
    std::fprintf(stderr, "launch: cannot run pretext: %s\n", std::strerror(errno));
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  *output = pipe_fds[0];
  return pid;
}

// Writes the complete lines of `rank`'s output read so far, each with its prefix; with `flush`
// the incomplete rest too.
void emit(Rank& rank, int64_t index, bool flush) {
  size_t start = 0;
  for (size_t end; (end = rank.pending.find_first_of("\n\r", start)) != std::string::npos;
       start = end + 1)
    if (end > start)
      std::cerr << "[rank " << index << "] " << rank.pending.substr(start, end - start) << '\n';
  rank.pending.erase(0, start);
  if (flush && !rank.pending.empty()) {
    std::cerr << "[rank " << index << "] " << rank.pending << '\n';
    rank.pending.clear();
  }
  std::cerr.flush();
}

// The shell's convention: the exit code, or 128 + the signal that ended the process.
int status_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

std::string describe(int status) {
  if (WIFSIGNALED(status))
    return std::string("was killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
           ::strsignal(WTERMSIG(status)) + ")";
  return "exited with status " + std::to_string(status_code(status));
}

}  // namespace

int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    const std::string reason = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("launch: cannot find a free loopback port: " + reason);
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

int launch(int64_t ranks, std::vector<std::string> arguments, int64_t grace_s) {
  if (arguments.empty() || arguments.front() != "pretrain")
    throw ConfigError(
        "launch runs `pretext pretrain ...` on several ranks (evaluation commands "
        "run in one process); got: " +
        (arguments.empty() ? std::string("nothing") : arguments.front()));
  const int port = free_loopback_port();
  std::vector<Rank> children(static_cast<size_t>(ranks));
  for (int64_t r = 0; r < ranks; ++r)
    children[r].pid = start_rank(r, ranks, port, arguments, &children[r].output);
  // Ctrl-C reaches every rank from the terminal; a signal sent to the launcher alone is passed on.
  auto previous_int = std::signal(SIGINT, remember_signal);
  auto previous_term = std::signal(SIGTERM, remember_signal);

  int result = 0;
  int64_t first_failure = -1;
  auto failed_at = std::chrono::steady_clock::now();
  bool stopping = false;
  int64_t running = ranks;
  while (running > 0) {
    std::vector<pollfd> fds;
    std::vector<int64_t> owners;
    for (int64_t r = 0; r < ranks; ++r)
      if (children[r].output >= 0) {
        fds.push_back({children[r].output, POLLIN, 0});
        owners.push_back(r);
      }
    if (!fds.empty())
      ::poll(fds.data(), fds.size(), 200);
    else
      ::usleep(200 * 1000);
    for (size_t i = 0; i < fds.size(); ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      Rank& child = children[owners[i]];
      char buffer[4096];
      const ssize_t got = ::read(child.output, buffer, sizeof buffer);
      if (got > 0) {
        child.pending.append(buffer, static_cast<size_t>(got));
        emit(child, owners[i], false);
      } else if (got == 0 || errno != EINTR) {
        emit(child, owners[i], true);
        ::close(child.output);
        child.output = -1;
      }
    }
    for (int64_t r = 0; r < ranks; ++r) {
      Rank& child = children[r];
      int status = 0;
      if (!child.running || child.output >= 0 || ::waitpid(child.pid, &status, WNOHANG) <= 0)
        continue;
      child.running = false;
      --running;
      if (status_code(status) != 0 && first_failure < 0) {
        first_failure = r;
        result = status_code(status);
        failed_at = std::chrono::steady_clock::now();
        std::cerr << "launch: rank " << r << " " << describe(status) << "; stopping the job\n";
      }
    }
    if (g_forward_signal != 0) {
      for (const auto& child : children)
        if (child.running) ::kill(child.pid, g_forward_signal);
      g_forward_signal = 0;
    }
    const bool grace_over = first_failure >= 0 && std::chrono::steady_clock::now() - failed_at >
                                                      std::chrono::seconds(grace_s);
    if (grace_over && !stopping) {
      stopping = true;
      for (const auto& child : children)
        if (child.running) ::kill(child.pid, SIGKILL);
    }
  }
  std::signal(SIGINT, previous_int);
  std::signal(SIGTERM, previous_term);
  return result;
}

}  // namespace pretext::pipelines
