#include "pipelines/evaluation.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <map>
#include <numeric>
#include <set>

#include <torch/types.h>
#include <torch/utils.h>

#include "base/errors.h"
#include "domains/augment.h"
#include "domains/sampler.h"
#include "io/loader.h"
#include "pipelines/checkpoint.h"
#include "pipelines/progress.h"

namespace pretext::pipelines {

void EvalOptions::visit_fields(FieldVisitor& visit) {
  visit("k", k_, Check::at_least(1).non_empty());
  visit("temperature", temperature_, Check::above(0));
  visit("train_split", train_split_, Check::one_of({"train", "val", "test"}));
  visit("val_split", val_split_, Check::one_of({"train", "val", "test"}));
  visit("test_split", test_split_, Check::one_of({"train", "val", "test"}));
  visit("test_fraction", test_fraction_, Check::between(0.01, 0.99));
  visit("val_fraction", val_fraction_, Check::between(0.01, 0.99));
  visit("batch_size", batch_size_, Check::at_least(1));
  visit("group_by", group_by_);
}

std::vector<int64_t> stratified_draw(const std::vector<int64_t>& members,
                                     const std::vector<int64_t>& labels,
                                     const std::function<int64_t(int64_t)>& count, uint64_t seed) {
  std::map<int64_t, std::vector<int64_t>> by_class;
  for (const int64_t i : members) by_class[labels[i]].push_back(i);
  std::vector<int64_t> drawn;
  for (const auto& [label, group] : by_class) {
    // A class's draw depends on the seed and the class only, not on the other classes.
    const auto order = domains::EpochSampler(static_cast<int64_t>(group.size()),
                                             domains::mix_seed(seed, static_cast<uint64_t>(label)))
                           .order(0);
    const int64_t n = std::min<int64_t>(count(static_cast<int64_t>(group.size())), group.size());
    for (int64_t j = 0; j < n; ++j) drawn.push_back(group[order[j]]);
  }
  std::sort(drawn.begin(), drawn.end());
  return drawn;
}

namespace {

std::vector<int64_t> without(const std::vector<int64_t>& all, const std::vector<int64_t>& removed) {
  std::vector<int64_t> rest;
  std::set_difference(all.begin(), all.end(), removed.begin(), removed.end(),
                      std::back_inserter(rest));
  return rest;
}

std::function<int64_t(int64_t)> fraction_of(double fraction) {
  return [fraction](int64_t size) {
    return std::max<int64_t>(1, static_cast<int64_t>(std::llround(fraction * size)));
  };
}

/// The units a hold-out draws: the examples of one group together, an example without a group
/// on its own; each unit labelled with its examples' most common label (the smallest on a tie).
struct Units {
  std::vector<std::vector<int64_t>> members;
  std::vector<int64_t> labels;
};

Units units_of(const std::vector<int64_t>& examples, const ExampleLabels& all) {
  Units units;
  std::map<int64_t, size_t> unit_of_group;
  for (const int64_t i : examples) {
    const int64_t group = all.groups.empty() ? -1 : all.groups[static_cast<size_t>(i)];
    auto found = group < 0 ? unit_of_group.end() : unit_of_group.find(group);
    if (found == unit_of_group.end()) {
      if (group >= 0) found = unit_of_group.emplace(group, units.members.size()).first;
      units.members.emplace_back();
    }
    units.members[group < 0 ? units.members.size() - 1 : found->second].push_back(i);
  }
  for (const auto& members : units.members) {
    std::map<int64_t, int64_t> votes;
    for (const int64_t i : members) ++votes[all.labels[static_cast<size_t>(i)]];
    const auto most =
        std::max_element(votes.begin(), votes.end(),
                         [](const auto& a, const auto& b) { return a.second < b.second; });
    units.labels.push_back(most->first);
  }
  return units;
}

/// Whole units of `examples`, `count` per class drawn with `seed`, as sorted example indices.
std::vector<int64_t> draw_units(const std::vector<int64_t>& examples, const ExampleLabels& all,
                                const std::function<int64_t(int64_t)>& count, uint64_t seed) {
  const auto units = units_of(examples, all);
  std::vector<int64_t> ids(units.members.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::vector<int64_t> drawn;
  for (const int64_t u : stratified_draw(ids, units.labels, count, seed))
    drawn.insert(drawn.end(), units.members[static_cast<size_t>(u)].begin(),
                 units.members[static_cast<size_t>(u)].end());
  std::sort(drawn.begin(), drawn.end());
  return drawn;
}

/// Groups per part, and groups found in more than one part.
void count_groups(EvalSplit& split, const ExampleLabels& all) {
  std::map<int64_t, std::set<int>> parts_of_group;
  const auto count = [&](const std::vector<int64_t>& part, int index) {
    int64_t alone = 0;
    std::set<int64_t> groups;
    for (const int64_t i : part) {
      const int64_t group = all.groups.empty() ? -1 : all.groups[static_cast<size_t>(i)];
      if (group < 0) {
        ++alone;
        continue;
      }
      groups.insert(group);
      parts_of_group[group].insert(index);
    }
    return alone + static_cast<int64_t>(groups.size());
  };
  split.train_groups = count(split.train, 0);
  split.val_groups = count(split.val, 1);
  split.test_groups = count(split.test, 2);
  split.groups_across_parts =
      std::count_if(parts_of_group.begin(), parts_of_group.end(),
                    [](const auto& entry) { return entry.second.size() > 1; });
}

}  // namespace

EvalSplit eval_split(const ExampleLabels& examples, const EvalOptions& options, uint64_t seed,
                     bool need_val) {
  const auto& labels = examples.labels;
  const auto& splits = examples.splits;
  std::vector<int64_t> labelled;
  int64_t classes = 0;
  bool has_splits = false;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0) continue;
    labelled.push_back(static_cast<int64_t>(i));
    classes = std::max(classes, labels[i] + 1);
    has_splits = has_splits || !splits[i].empty();
  }
  if (classes < 2)
    throw InputError("the data set has " + std::to_string(classes) +
                     " labels; evaluation needs labelled images of at least 2 classes (class "
                     "folders, or a label column in the manifest)");
  EvalSplit split;
  if (has_splits) {
    for (const int64_t i : labelled) {
      if (splits[i] == options.train_split()) split.train.push_back(i);
      if (splits[i] == options.val_split()) split.val.push_back(i);
      if (splits[i] == options.test_split()) split.test.push_back(i);
    }
  } else {
    split.test = draw_units(labelled, examples, fraction_of(options.test_fraction()), seed);
    split.train = without(labelled, split.test);
  }
  if (need_val && split.val.empty()) {
    split.val = draw_units(split.train, examples, fraction_of(options.val_fraction()),
                           domains::mix_seed(seed, 1));
    split.train = without(split.train, split.val);
  }
  if (!need_val) split.val.clear();
  count_groups(split, examples);
  const auto count = [](const std::vector<int64_t>& part, const std::string& name) {
    return std::to_string(part.size()) + " labelled '" + name + "'";
  };
  if (split.train.empty() || split.test.empty() || (need_val && split.val.empty()))
    throw InputError("the data set has " + count(split.train, options.train_split()) + ", " +
                     (need_val ? count(split.val, options.val_split()) + ", " : "") +
                     count(split.test, options.test_split()) +
                     " images; evaluation needs each of them");
  return split;
}

std::vector<int64_t> FeatureSet::label_list() const {
  const auto values = labels.contiguous();
  return {values.data_ptr<int64_t>(), values.data_ptr<int64_t>() + values.numel()};
}

torch::Tensor FeatureSet::features_of(const std::vector<int64_t>& indices) const {
  return features.index_select(0, torch::tensor(indices, torch::kInt64));
}

torch::Tensor FeatureSet::labels_of(const std::vector<int64_t>& indices) const {
  return labels.index_select(0, torch::tensor(indices, torch::kInt64));
}

torch::Tensor FeatureSet::targets_of(const std::vector<int64_t>& indices) const {
  if (!targets.defined()) return {};
  return targets.index_select(0, torch::tensor(indices, torch::kInt64));
}

namespace {

c10::List<std::string> string_list(const std::vector<std::string>& values) {
  c10::List<std::string> list;
  for (const auto& value : values) list.push_back(value);
  return list;
}

std::vector<std::string> strings_of(const c10::IValue& value) {
  std::vector<std::string> strings;
  for (const auto& item : value.toListRef()) strings.push_back(item.toStringRef());
  return strings;
}

}  // namespace

void save_features(const std::string& path, const FeatureSet& set) {
  c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
  dict.insert("features", set.features.contiguous());
  dict.insert("labels", set.labels.contiguous());
  dict.insert("paths", string_list(set.paths));
  dict.insert("splits", string_list(set.splits));
  dict.insert("groups", torch::tensor(set.groups, torch::kInt64));
  dict.insert("classes", string_list(set.class_names));
  if (set.targets.defined()) dict.insert("targets", set.targets.contiguous());
  save_pickle(path, c10::IValue(dict));
}

FeatureSet load_features(const std::string& path) {
  const auto value = load_pickle(path, "a feature file written by pretext extract");
  FeatureSet set;
  try {
    const auto dict = value.toGenericDict();
    set.features = dict.at("features").toTensor().to(torch::kFloat32);
    set.labels = dict.at("labels").toTensor().to(torch::kInt64);
    set.paths = strings_of(dict.at("paths"));
    set.splits = strings_of(dict.at("splits"));
    const auto groups = dict.at("groups").toTensor().to(torch::kInt64).contiguous();
    set.groups.assign(groups.data_ptr<int64_t>(), groups.data_ptr<int64_t>() + groups.numel());
    set.class_names = strings_of(dict.at("classes"));
    if (dict.contains("targets")) set.targets = dict.at("targets").toTensor().to(torch::kFloat32);
  } catch (const c10::Error& e) {
    throw InputError(path + ": not a feature file written by pretext extract (" +
                     e.what_without_backtrace() + ")");
  }
  const auto n = set.features.dim() == 2 ? set.features.size(0) : -1;
  if (n < 0 || set.labels.dim() != 1 || set.labels.size(0) != n ||
      static_cast<int64_t>(set.paths.size()) != n || static_cast<int64_t>(set.splits.size()) != n ||
      static_cast<int64_t>(set.groups.size()) != n)
    throw InputError(path +
                     ": the features, labels, paths, splits and groups have different lengths");
  const int64_t classes = static_cast<int64_t>(set.class_names.size());
  if (n > 0 &&
      (set.labels.max().item<int64_t>() >= classes || set.labels.min().item<int64_t>() < -1))
    throw InputError(path + ": a label is outside the " + std::to_string(classes) + " classes");
  if (set.targets.defined() &&
      (set.targets.dim() != 2 || set.targets.size(0) != n || set.targets.size(1) != classes))
    throw InputError(path + ": the targets are not [" + std::to_string(n) + ", " +
                     std::to_string(classes) + "] (examples x classes)");
  if (set.targets.defined() && !set.targets.eq(0).logical_or(set.targets.eq(1)).all().item<bool>())
    throw InputError(path + ": a target is neither 0 nor 1");
  return set;
}

torch::Tensor extract_features(methods::BackboneImpl& encoder,
                               std::shared_ptr<const io::Dataset> dataset,
                               const std::vector<int64_t>& indices,
                               const domains::AugmentOptions& augment, const c10::Device& device,
                               int64_t batch_size, int64_t workers) {
  const bool was_training = encoder.is_training();
  encoder.eval();
  methods::to_channels_last(encoder);  // as the trainer runs it
  torch::NoGradGuard no_grad;
  io::Loader loader(dataset, indices,
                    io::LoaderOptions()
                        .batch_size(batch_size)
                        .workers(workers)
                        .drop_last(false)
                        .pin_memory(device.is_cuda()));
  std::vector<torch::Tensor> features;
  Progress progress("features of " + std::to_string(indices.size()) + " images", loader.batches());
  while (auto batch = loader.next()) {
    const auto images =
        domains::evaluation_view(batch->pixels.to(device, /*non_blocking=*/true), augment)
            .contiguous(torch::MemoryFormat::ChannelsLast);
    features.push_back(encoder.forward(images).to(torch::kCPU, torch::kFloat32));
    progress.update(batch->position + 1);
  }
  progress.finish();
  encoder.train(was_training);
  return torch::cat(features);
}

ExampleLabels labels_of(const io::Dataset& dataset, io::GroupBy by) {
  ExampleLabels out;
  std::map<std::string, int64_t> number_of;  // group key -> its number, in order of appearance
  const bool multi_label = dataset.multi_label();
  for (int64_t i = 0; i < dataset.size(); ++i) {
    auto classes = dataset.label_set(i);
    out.labels.push_back(classes.empty() ? -1 : classes.front());
    if (multi_label) out.label_sets.push_back(std::move(classes));
    out.splits.push_back(dataset.item(i).split);
    const auto key = dataset.group_of(i, by);
    out.groups.push_back(
        key.empty() ? -1
                    : number_of.emplace(key, static_cast<int64_t>(number_of.size())).first->second);
  }
  return out;
}

FeatureSet extract_feature_set(methods::BackboneImpl& encoder,
                               std::shared_ptr<const io::Dataset> dataset,
                               const domains::AugmentOptions& augment, const c10::Device& device,
                               int64_t batch_size, int64_t workers, io::GroupBy group_by) {
  // The groups first: a grouping the data cannot give fails before the features are computed.
  auto examples = labels_of(*dataset, group_by);
  std::vector<int64_t> all(static_cast<size_t>(dataset->size()));
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
  FeatureSet set;
  set.features = extract_features(encoder, dataset, all, augment, device, batch_size, workers);
  for (const int64_t i : all) set.paths.push_back(dataset->item(i).path);
  set.labels = torch::tensor(examples.labels, torch::kInt64);
  set.splits = std::move(examples.splits);
  set.groups = std::move(examples.groups);
  set.class_names = dataset->class_names();
  if (dataset->multi_label()) {
    set.targets = torch::zeros({set.size(), static_cast<int64_t>(set.class_names.size())});
    auto rows = set.targets.accessor<float, 2>();
    for (const int64_t i : all)
      for (const int64_t c : examples.label_sets[static_cast<size_t>(i)]) rows[i][c] = 1.0F;
  }
  return set;
}

}  // namespace pretext::pipelines
