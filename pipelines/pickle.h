#pragma once

#include <string>

#include <ATen/core/ivalue.h>

namespace pretext::pipelines {

/// A pickle stream (protocol 2, as torch.save writes) rewritten so that LibTorch 1.13's unpickler
/// reads what Python code usually saves:
///   - collections.OrderedDict (what Module.state_dict() returns; LibTorch turns it into None)
///     becomes a plain dict, and its `_metadata` attribute (the BUILD state) is dropped;
///   - single-item SETITEM / APPEND (a dict or list of one element) become their MARK ... SETITEMS
///     / APPENDS forms, the only ones LibTorch reads.
/// Everything else passes through unchanged. Throws std::runtime_error naming the byte offset for
/// an opcode LibTorch cannot read or a construct this rewrite cannot follow.
std::string readable_by_libtorch(const std::string& pickle);

/// The object in a torch.save / torch::pickle_save zip archive (data.pkl and its tensor records),
/// read through readable_by_libtorch, every tensor on the CPU whatever device it was saved from.
/// Throws c10::Error or std::runtime_error; callers name the file.
c10::IValue read_torch_archive(const std::string& path);

}  // namespace pretext::pipelines
