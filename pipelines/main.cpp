// The pretext command line. Only this file catches: it prints the message and exits 2 for bad
// input or config, 1 for anything else.
#include <cstdio>
#include <functional>
#include <iostream>
#include <optional>
#include <utility>
#include <vector>

#include <c10/util/Exception.h>
#include <CLI/CLI.hpp>

#include "base/errors.h"
#include "pipelines/commands.h"
#include "pipelines/demo.h"
#include "pipelines/inspect.h"
#include "pipelines/launch.h"
#include "pipelines/report.h"
#include "pipelines/system.h"

namespace {

using namespace pretext;
using namespace pretext::pipelines;

constexpr const char* kDemoFooter = R"(
To run the same on your own images:
  1. Put them in a folder (class sub-folders, and train/ test/ above them, give k-NN its labels
     and splits), or list them in a CSV manifest: path[,label][,split].
  2. Copy DIR/simclr_demo.yaml, set data.root to your folder or manifest, data.image_size and
     data.bands for your images, and augment.mean / augment.std per band.
  3. pretext pretrain --config my.yaml          (Ctrl-C stops with a checkpoint; add --resume)
     pretext knn --config my.yaml               (k-NN top-1 of the pretrained encoder)
     pretext knn --config my.yaml --random-init (the same for an untrained encoder)
Any key can be changed for one run with --set section.key=value, e.g. --set train.lr=0.001.)";

int run(int argc, char** argv) {
  CLI::App app{"pretext: self-supervised pretraining on medical and satellite imagery"};
  app.require_subcommand(0, 1);
  app.set_version_flag("--version", std::function<std::string()>([] {
                         return std::string("pretext ") + PRETEXT_VERSION + " (" + torch_summary() +
                                ")";
                       }));

  std::string config_path;
  std::vector<std::string> overrides;
  bool resume = false;
  auto* pretrain_cmd = app.add_subcommand("pretrain", "Pretrain an encoder as a config says");
  pretrain_cmd->add_option("--config", config_path, "YAML run config")->required();
  pretrain_cmd->add_option("--set", overrides, "Override a config key: section.key=value");
  pretrain_cmd->add_flag("--resume", resume, "Continue from the run directory's checkpoint");
  EncoderSource source;
  pretrain_cmd
      ->add_option("--init-from", source.init_from,
                   "Start the encoder from a state dict (torchvision / timm layout)")
      ->excludes("--resume");

  std::string features, out;
  // The options every command that evaluates or exports an encoder shares.
  const auto encoder_command = [&](const char* name, const char* description) {
    auto* command = app.add_subcommand(name, description);
    command->add_option("--config", config_path, "YAML run config")->required();
    command->add_option("--set", overrides, "Override a config key: section.key=value");
    auto* checkpoint_option = command->add_option(
        "--checkpoint", source.checkpoint, "pretext checkpoint (default: run.dir/checkpoint.pt)");
    auto* init_option = command->add_option(
        "--init-from", source.init_from,
        "Encoder weights from a state dict (torchvision / timm layout, e.g. saved in Python)");
    auto* random_option = command->add_flag("--random-init", source.random_init,
                                            "An untrained encoder, for the baseline");
    checkpoint_option->excludes(init_option)->excludes(random_option);
    init_option->excludes(random_option);
    return command;
  };
  auto* extract_cmd =
      encoder_command("extract", "Frozen features of every image, with paths and labels");
  extract_cmd->add_option("--out", out, "Feature file (default: run.dir/features.pt)");
  auto* knn_cmd = encoder_command("knn", "k-NN classification for several k on frozen features");
  knn_cmd->add_option("--features", features, "Use a file from pretext extract");
  auto* probe_cmd = encoder_command(
      "probe", "Linear probe on frozen features, or a learning-rate / weight-decay sweep");
  probe_cmd->add_option("--features", features, "Use a file from pretext extract");
  auto* finetune_cmd = encoder_command(
      "finetune", "Fine-tune encoder + linear head on a few labels, over several seeds");
  auto* export_cmd = encoder_command(
      "export", "The encoder's weights for Python's torch.load, with a JSON of its preprocessing");
  export_cmd->add_option("--out", out, "State dict file (default: run.dir/encoder.pt)");

  auto* report_cmd =
      app.add_subcommand("report", "Write run.dir/report.html from what the run directory holds");
  report_cmd->add_option("--config", config_path, "YAML run config")->required();
  report_cmd->add_option("--set", overrides, "Override a config key: section.key=value");

  std::string file;
  bool stats = false;
  auto* inspect_cmd = app.add_subcommand(
      "inspect", "Show what the reader sees in an image, a DICOM file or folder, or a volume");
  inspect_cmd->add_option("PATH", file, "Image, DICOM file or folder, or NIfTI/NRRD/MHA volume")
      ->required();
  inspect_cmd->add_flag("--stats", stats,
                        "Min / mean / max of the decoded values (after rescale: HU for CT)");

  int64_t ranks = 2;
  auto* launch_cmd = app.add_subcommand(
      "launch",
      "Run pretrain as data-parallel ranks on this machine: pretext launch -n 2 -- pretrain "
      "--config FILE");
  launch_cmd->add_option("-n,--ranks", ranks, "Ranks (processes) to start")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  launch_cmd->prefix_command();
  launch_cmd->footer(
      "\nEach rank trains on its share of the global batch (ranks x train.batch_size); torchrun "
      "(--no_python) and srun start the same `pretext pretrain` across machines.");

  DemoOptions demo;
  auto* demo_cmd = app.add_subcommand(
      "demo",
      "Generate a labelled GeoTIFF set, pretrain SimCLR on it (about two minutes on 2 "
      "cores) and compare k-NN of the random-init and pretrained encoders");
  demo_cmd->add_option("--dir", demo.dir(), "Folder for tiles, config and run")
      ->capture_default_str();
  demo_cmd->add_option("--steps", demo.steps(), "Pretraining steps")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  demo_cmd->footer(kDemoFooter);

  // `pretext launch -n 2 -- pretrain ...`: CLI11 would take the "--" as the end of its options
  // and refuse what follows; launch's prefix command is everything after it either way.
  std::vector<char*> arguments(argv, argv + argc);
  if (argc > 2 && std::string(argv[1]) == "launch")
    for (auto it = arguments.begin() + 2; it != arguments.end(); ++it)
      if (std::string(*it) == "--") {
        arguments.erase(it);
        break;
      }
  try {
    app.parse(static_cast<int>(arguments.size()), arguments.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  RunLog log;
  std::optional<RunConfig> loaded;
  const auto config = [&]() -> const RunConfig& {
    loaded = load_run_config(config_path, overrides);
    return *loaded;
  };
  // Each subcommand and what it does; the exit status is its return value.
  const std::vector<std::pair<CLI::App*, std::function<int()>>> commands = {
      {pretrain_cmd,
       [&] {
         // 130: the shell's status for a program stopped by Ctrl-C (here, after a checkpoint).
         return pretrain(config(), resume, source.init_from, log).interrupted ? 130 : 0;
       }},
      {extract_cmd,
       [&] {
         extract(config(), source, out, log);
         return 0;
       }},
      {knn_cmd,
       [&] {
         const auto scores = knn(config(), source, features, log);
         std::printf("%-6s %s\n", "k", "top-1");
         for (const auto& s : scores)
           std::printf("%-6ld %.2f%%\n", static_cast<long>(s.k), 100 * s.metrics.top1);
         return 0;
       }},
      {probe_cmd,
       [&] {
         const auto result = probe(config(), source, features, log);
         std::printf("linear probe test top-1 %.2f%%\n",
                     100 * result.heads[result.chosen].test.top1);
         return 0;
       }},
      {finetune_cmd,
       [&] {
         for (const auto& r : finetune(config(), source, log))
           std::printf("seed %ld: %ld labels, test top-1 %.2f%%\n", static_cast<long>(r.seed),
                       static_cast<long>(r.labelled), 100 * r.test.top1);
         return 0;
       }},
      {export_cmd,
       [&] {
         export_encoder(config(), source, out, log);
         return 0;
       }},
      {report_cmd,
       [&] {
         std::printf("%s\n", write_report(config()).c_str());
         return 0;
       }},
      {inspect_cmd,
       [&] {
         std::cout << inspect(file, stats);
         return 0;
       }},
      {launch_cmd, [&] { return launch(ranks, launch_cmd->remaining()); }},
      {demo_cmd,
       [&] {
         const auto [random, pretrained] = run_demo(demo);
         if (pretrained > random) return 0;
         std::cerr << "demo: the pretrained encoder did not beat the random one\n";
         return 1;
       }},
  };
  for (const auto& [command, action] : commands) {
    if (!*command) continue;
    try {
      return action();
    } catch (const InputError& e) {
      // An option of the data would change the outcome: say where the config sets it.
      if (e.option().empty() || !loaded) {
        log.error(e.what());
        throw;
      }
      const std::string where = loaded->file->where("data", e.option());
      log.error(std::string(e.what()) + " (" + where + ")");
      throw InputError(std::string(e.what()) + " (" + where + ")");
    } catch (const c10::Error& e) {
      log.error(e.what_without_backtrace());
      throw;
    } catch (const std::exception& e) {
      log.error(e.what());
      throw;
    }
  }
  std::cout << app.help();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  pretext::pipelines::configure_allocator();
  try {
    return run(argc, argv);
  } catch (const pretext::InputError& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 2;
  } catch (const pretext::ConfigError& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 2;
  } catch (const pretext::DistributedError& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  } catch (const c10::Error& e) {
    std::cerr << "internal error: " << e.what_without_backtrace() << std::endl;
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "internal error: " << e.what() << std::endl;
    return 1;
  }
}
