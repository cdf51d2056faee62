#include "pipelines/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "base/errors.h"
#include "base/torch_compat.h"
#include "domains/sampler.h"
#include "pipelines/config.h"
#include "pipelines/optimizer.h"
#include "pipelines/progress.h"
#include "pipelines/training_metrics.h"

namespace pretext::pipelines {
namespace fs = std::filesystem;

void TrainerOptions::visit_fields(FieldVisitor& visit) {
  visit("epochs", epochs_, Check::at_least(1));
  visit("max_steps", max_steps_, Check::at_least(0));
  visit("batch_size", batch_size_, Check::at_least(2));
  visit("optimizer", optimizer_);
  visit("lr", lr_, Check::above(0));
  visit("lr_scaling", lr_scaling_);
  visit("min_lr", min_lr_, Check::at_least(0));
  visit("warmup_steps", warmup_steps_, Check::at_least(0));
  visit("momentum", momentum_, Check::from_below(0, 1));
  visit("trust_coefficient", trust_coefficient_, Check::above(0));
  visit("betas", betas_, Check::from_below(0, 1));
  visit("weight_decay", weight_decay_, Check::at_least(0));
  visit("weight_decay_schedule", weight_decay_schedule_);
  visit("weight_decay_end", weight_decay_end_, Check::at_least(0));
  visit("grad_clip", grad_clip_, Check::at_least(0));
  visit("clip_mode", clip_mode_);
  visit("checkpoint_every", checkpoint_every_, Check::at_least(0));
  visit("log_every", log_every_, Check::at_least(1));
}

bool backward_and_step(const torch::Tensor& loss, torch::optim::Optimizer& optimizer,
                       const std::vector<torch::Tensor>& parameters, const TrainerOptions& options,
                       LossScale* loss_scale, ProcessGroup* group) {
  optimizer.zero_grad();
  (loss_scale ? loss.to(torch::kFloat) * loss_scale->scale : loss).backward();
  if (group) {
    std::vector<torch::Tensor> gradients;
    for (const auto& p : parameters)
      if (p.grad().defined()) gradients.push_back(p.grad());
    group->average(gradients);
  }
  if (loss_scale) {
    const bool finite = unscale_gradients(parameters, loss_scale->scale);
    update_loss_scale(*loss_scale, finite);
    if (!finite) return false;
  }
  if (options.grad_clip() > 0 && options.clip_mode() == ClipMode::kGlobal)
    clip_gradients_globally(parameters, options.grad_clip());
  if (options.grad_clip() > 0 && options.clip_mode() == ClipMode::kPerParameter)
    clip_gradients_per_parameter(parameters, options.grad_clip());
  optimizer.step();
  return true;
}

Trainer::Trainer(std::shared_ptr<methods::MethodImpl> method, TrainerOptions options,
                 TrainerContext context)
    : method_(std::move(method)), options_(std::move(options)), context_(std::move(context)) {
  if (context_.group) {
    // Every rank starts from rank 0's weights and buffers, and draws its rows of the global batch.
    context_.group->doing("receiving rank 0's initial weights");
    std::vector<torch::Tensor> state = method_->parameters();
    for (const auto& b : method_->buffers()) state.push_back(b);
    context_.group->broadcast(state);
    method_->set_batch_slice(
        BatchSlice{rank() * options_.batch_size(), world_size() * options_.batch_size()});
    method_->set_group(context_.group, context_.sync_batch_norm);
    double bytes = 0;
    for (const auto& p : method_->parameters())
      if (p.requires_grad()) bytes += static_cast<double>(p.numel() * p.element_size());
    // A ring all-reduce sends and receives 2 (N - 1) / N of the bytes on every rank.
    char line[160];
    std::snprintf(line, sizeof line,
                  "gradients all-reduced per step: %.2f MiB (%.2f MiB sent per rank by a ring "
                  "all-reduce)",
                  bytes / (1 << 20), 2.0 * (world_size() - 1) / world_size() * bytes / (1 << 20));
    if (context_.log) context_.log->info(line);
  }
  method_->to(context_.device);
  methods::to_channels_last(*method_);
  const auto parameter_groups =
      decay_groups(*method_, peak_lr(), options_.weight_decay(), method_->constant_lr_parameters());
  optimizer_ = make_optimizer(options_.optimizer(), parameter_groups, options_.momentum(),
                              Betas{options_.betas().at(0), options_.betas().at(1)},
                              options_.trust_coefficient());
  for (size_t g = 0; g < parameter_groups.size(); ++g) {
    if (parameter_groups[g].weight_decay > 0) decaying_groups_.push_back(g);
    if (!parameter_groups[g].scheduled) constant_lr_groups_.push_back(g);
  }
}

void Trainer::resume() {
  std::string config_text;
  state_ =
      load_checkpoint(checkpoint_path(), *method_, optimizer_.get(), context_.device, &config_text);
  if (const auto difference = first_difference(config_text, context_.config_text))
    throw ConfigError(checkpoint_path() + ": written with a different config (line " +
                      std::to_string(difference->line) + ": '" + difference->theirs + "' was '" +
                      difference->ours +
                      "'; train.batch_size compared as ranks x batch_size, the global batch); "
                      "resume with the config it was written with, or start a new run.dir");
  resumed_ = true;
  if (context_.log)
    context_.log->info("resuming from " + checkpoint_path() + " at step " +
                       std::to_string(state_.step) + " (epoch " + std::to_string(state_.epoch) +
                       ", batch " + std::to_string(state_.batch_in_epoch) + "), written by " +
                       std::to_string(state_.world_size) + " rank(s)");
}

double Trainer::peak_lr() const {
  return options_.lr_scaling() == LrScaling::kLinear
             ? options_.lr() * static_cast<double>(options_.batch_size() * world_size()) / 256
             : options_.lr();
}

double Trainer::lr_at(int64_t step, int64_t total_steps) const {
  const double peak = peak_lr();
  const int64_t warmup = options_.warmup_steps();
  if (step < warmup) return peak * static_cast<double>(step + 1) / warmup;
  const double span = std::max<int64_t>(1, total_steps - warmup);
  const double progress = std::min(1.0, (step - warmup) / span);
  return options_.min_lr() + (peak - options_.min_lr()) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

double Trainer::weight_decay_at(int64_t step, int64_t total_steps) const {
  if (options_.weight_decay_schedule() == WeightDecaySchedule::kConstant)
    return options_.weight_decay();
  const double progress = std::min(
      1.0, static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, total_steps)));
  return options_.weight_decay_end() + (options_.weight_decay() - options_.weight_decay_end()) *
                                           0.5 * (1.0 + std::cos(M_PI * progress));
}

void Trainer::save() {
  state_.world_size = world_size();
  if (context_.group) check_replicas_agree();
  if (writes())
    save_checkpoint(checkpoint_path(), *method_, optimizer_.get(), state_, context_.config_text);
  if (context_.group) {
    // No rank goes on before rank 0's checkpoint is complete; a rank that is stuck is named.
    context_.group->doing("waiting at the checkpoint of step " + std::to_string(state_.step));
    context_.group->barrier();
  }
}

void Trainer::check_replicas_agree() {
  torch::NoGradGuard no_grad;
  double checksum = 0;
  int64_t at = 0;
  // Weighted by position, so that two tensors swapped do not cancel out.
  for (const auto& p : method_->parameters())
    checksum += p.detach().to(torch::kCPU, torch::kFloat64).sum().item<double>() * ++at;
  context_.group->doing("comparing the weights of every rank at step " +
                        std::to_string(state_.step));
  const auto all = context_.group->all_gather(torch::tensor({checksum}, torch::kFloat64));
  for (int64_t r = 0; r < world_size(); ++r)
    if (all[r].item<double>() != all[0].item<double>())
      throw DistributedError("rank " + std::to_string(r) + " of " + std::to_string(world_size()) +
                             " holds other weights than rank 0 at "
                             "step " +
                             std::to_string(state_.step) + " (checksum " +
                             std::to_string(all[r].item<double>()) + " against " +
                             std::to_string(all[0].item<double>()) + ")");
}

double Trainer::mean_over_ranks(const torch::Tensor& value) {
  if (!context_.group) return value.item<double>();
  auto mean = value.detach().to(torch::kCPU, torch::kFloat64).reshape({1}).clone();
  context_.group->average({mean});
  return mean.item<double>();
}

bool Trainer::agreed(bool stop) {
  if (!context_.group) return stop;
  auto votes = torch::tensor({stop ? 1 : 0}, torch::kInt);
  context_.group->sum({votes});
  return votes.item<int>() > 0;
}

std::ofstream Trainer::open_metrics(bool resuming) {
  if (!writes()) return {};
  const std::string path = context_.run_dir.metrics();
  std::vector<TrainingRow> kept;
  // Rows after the checkpoint belong to the interrupted tail; the resumed run writes them again.
  if (resuming)
    for (const auto& row : read_training_rows(path))
      if (row.step <= state_.step) kept.push_back(row);
  std::ofstream out(path, std::ios::trunc);
  if (!out) throw InputError(path + ": cannot write metrics");
  out << training_csv_header() << '\n';
  for (const auto& row : kept) out << to_csv(row) << '\n';
  return out;
}

int64_t Trainer::total_steps(int64_t dataset_size) const {
  const int64_t global_batch = options_.batch_size() * world_size();
  const int64_t steps_per_epoch = dataset_size / global_batch;
  if (steps_per_epoch < 1)
    throw InputError("the data set has " + std::to_string(dataset_size) +
                     " images, fewer than one batch of train.batch_size = " +
                     std::to_string(options_.batch_size()) +
                     (world_size() > 1 ? " times " + std::to_string(world_size()) + " ranks" : ""));
  const int64_t total = options_.epochs() * steps_per_epoch;
  return options_.max_steps() > 0 ? std::min(total, options_.max_steps()) : total;
}

methods::StepOutput Trainer::step(const io::Batch& batch, const domains::ViewAugment& augment,
                                  double lr, int64_t total) {
  const auto images = batch.pixels.to(context_.device, /*non_blocking=*/true);
  auto& groups = optimizer_->param_groups();
  for (auto& group : groups) group.options().set_lr(lr);
  for (const size_t g : constant_lr_groups_) groups[g].options().set_lr(peak_lr());
  if (options_.weight_decay_schedule() != WeightDecaySchedule::kConstant)
    for (const size_t g : decaying_groups_)
      set_weight_decay(groups[g], options_.optimizer(), weight_decay_at(state_.step, total));
  auto views =
      augment(images, context_.seed, state_.step, method_->view_count(),
              method_->global_view_count(), method_->joint_frames(), method_->batch_slice());
  for (auto& view : views) view = view.contiguous(torch::MemoryFormat::ChannelsLast);
  methods::StepOutput out;
  if (context_.group)
    context_.group->doing("the forward pass of step " + std::to_string(state_.step + 1) +
                          " (the method's batch statistics over the ranks)");
  {
    std::optional<compat::Autocast> autocast;
    if (context_.precision != Precision::kFp32)
      autocast.emplace(context_.device.type(), compute_dtype(context_.precision));
    out = method_->step_dated(views, batch.acquired_at);
  }
  const bool fp16 = context_.precision == Precision::kFp16;
  if (context_.group)
    context_.group->doing("the backward pass and gradient averaging of step " +
                          std::to_string(state_.step + 1));
  const bool stepped = backward_and_step(out.loss, *optimizer_, method_->parameters(), options_,
                                         fp16 ? &state_.loss_scale : nullptr, context_.group);
  if (fp16) {
    out.logs["loss_scale"] = torch::tensor(state_.loss_scale.scale);
    out.logs["step_skipped"] = torch::tensor(stepped ? 0.0 : 1.0);
  }
  ++state_.step;
  ++state_.batch_in_epoch;
  method_->after_optimizer_step(state_.step, total);
  return out;
}

TrainResult Trainer::fit(std::shared_ptr<const io::Dataset> dataset,
                         const domains::ViewAugment& augment, io::LoaderOptions loader_options,
                         const std::function<bool(int64_t)>& should_stop) {
  context_.run_dir.create();
  const auto started = std::chrono::steady_clock::now();
  loader_options.batch_size(options_.batch_size())
      .drop_last(true)
      .pin_memory(context_.device.is_cuda());
  const domains::EpochSampler sampler(dataset->size(), context_.seed);
  const int64_t total = total_steps(dataset->size());
  std::ofstream metrics = open_metrics(resumed_);
  method_->train();
  TrainResult result;
  std::optional<Progress> progress;
  if (writes()) progress.emplace("train", total);
  auto last_time = std::chrono::steady_clock::now();
  int64_t last_step = state_.step;
  double images_per_s = 0.0;  // over the steps since the last read
  while (state_.step < total && !result.interrupted) {
    io::Loader loader(dataset,
                      domains::rank_share(sampler.order(state_.epoch), options_.batch_size(),
                                          rank(), world_size()),
                      loader_options, state_.batch_in_epoch);
    while (state_.step < total) {
      auto batch = loader.next();
      if (!batch) break;
      const double lr = lr_at(state_.step, total);
      const auto out = step(*batch, augment, lr, total);
      const bool logs = state_.step % options_.log_every() == 0 || state_.step == total;
      const bool saves =
          options_.checkpoint_every() > 0 && state_.step % options_.checkpoint_every() == 0;
      // The loss and the logs stay on the device between log lines: reading them waits for the
      // step to finish, so they are read only where something is written.
      if (logs || saves) {
        result.last_loss = mean_over_ranks(out.loss);
        if (!std::isfinite(result.last_loss))
          throw InputError("training diverged: loss is " + std::to_string(result.last_loss) +
                           " at step " + std::to_string(state_.step) +
                           " (lower train.lr or set train.grad_clip)");
        const auto now = std::chrono::steady_clock::now();
        const double seconds = std::chrono::duration<double>(now - last_time).count();
        images_per_s = static_cast<double>((state_.step - last_step) * options_.batch_size()) /
                       std::max(seconds, 1e-9);
        last_time = now;
        last_step = state_.step;
      }
      if (logs) {
        std::ostringstream line;
        line << "step " << state_.step;
        for (const auto& [name, value] : out.logs)
          line << "  " << name << " " << mean_over_ranks(value);
        if (writes()) {
          metrics << to_csv({state_.step, state_.epoch, result.last_loss, lr,
                             images_per_s * world_size()})
                  << '\n';
          metrics.flush();
          if (!out.logs.empty() && context_.log) context_.log->file_only(line.str());
        }
      }
      if (progress) {
        std::ostringstream detail;
        detail << "epoch " << state_.epoch << "  loss " << result.last_loss;
        progress->update(state_.step, detail.str(), images_per_s * world_size());
      }
      if (saves) save();
      if (agreed(should_stop && should_stop(state_.step))) {
        result.interrupted = true;
        result.last_loss = mean_over_ranks(out.loss);
        break;
      }
    }
    if (!result.interrupted && state_.batch_in_epoch >= loader.batches()) {
      ++state_.epoch;
      state_.batch_in_epoch = 0;
      if (const auto note = dataset->skipped_note(); !note.empty() && context_.log)
        context_.log->file_only("epoch " + std::to_string(state_.epoch) + ": " + note);
    }
  }
  if (progress) progress->finish();
  save();
  result.steps = state_.step;
  if (const auto note = dataset->skipped_note(); !note.empty() && context_.log)
    context_.log->info(note);
  if (context_.group && context_.log) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    char line[160];
    std::snprintf(line, sizeof line,
                  "collectives took %.2f s of %.2f s of training (%.1f%%: communication and "
                  "waiting for the other ranks)",
                  context_.group->collective_seconds(), seconds,
                  100 * context_.group->collective_seconds() / std::max(seconds, 1e-9));
    context_.log->info(line);
  }
  if (context_.log)
    context_.log->info(std::string(result.interrupted ? "stopped" : "finished") + " at step " +
                       std::to_string(state_.step) + ", loss " + std::to_string(result.last_loss) +
                       "; checkpoint " + checkpoint_path());
  return result;
}

}  // namespace pretext::pipelines
