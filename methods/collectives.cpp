#include "methods/collectives.h"

#include <ATen/core/ivalue.h>
#include <torch/autograd.h>

namespace pretext::methods {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The group, carried from forward to backward in the autograd context (it outlives the step).
struct GroupHolder : torch::CustomClassHolder {
  explicit GroupHolder(Collectives* held) : group(held) {}
  Collectives* group;
};

void keep_group(AutogradContext* ctx, Collectives& group) {
  ctx->saved_data["group"] = c10::IValue::make_capsule(c10::make_intrusive<GroupHolder>(&group));
}

Collectives& group_of(AutogradContext* ctx) {
  return *static_cast<GroupHolder*>(ctx->saved_data["group"].toCapsule().get())->group;
}

at::Tensor summed(Collectives& group, const at::Tensor& x) {
  auto total = x.detach().contiguous().clone();
  group.sum({total});
  return total;
}

struct AllGather : torch::autograd::Function<AllGather> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, Collectives* group) {
    keep_group(ctx, *group);
    ctx->saved_data["rows"] = x.size(0);
    return group->all_gather(x.detach());
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto& group = group_of(ctx);
    const int64_t rows = ctx->saved_data["rows"].toInt();
    return {summed(group, grads[0]).narrow(0, group.rank() * rows, rows), at::Tensor()};
  }
};

}  // namespace

at::Tensor all_gather_with_grad(Collectives& group, const at::Tensor& x) {
  return AllGather::apply(x, &group);
}

}  // namespace pretext::methods
