#include "pipelines/pickle.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>
#include <torch/csrc/jit/serialization/unpickler.h>

namespace pretext::pipelines {
namespace {

// Python 3's pickle.dumps(data, protocol=2) of
//   sd = OrderedDict([("conv.weight", 1.5), ("conv.bias", 2)])
//   sd._metadata = OrderedDict([("", dict(version=1)), ("conv", dict(version=1))])
//   data = {"state_dict": sd, "epoch": 7, "layers": [3]}
// the way torch.save pickles a checkpoint holding model.state_dict(): an OrderedDict, its
// _metadata as a BUILD state, single-item dicts as SETITEM and a single-item list as APPEND.
const std::string kStateDictCheckpoint(
    "\x80\x02\x7d\x71\x00\x28\x58\x0a\x00\x00\x00\x73\x74\x61\x74\x65\x5f\x64\x69\x63\x74\x71\x01"
    "\x63\x63\x6f\x6c\x6c\x65\x63\x74\x69\x6f\x6e\x73\x0a\x4f\x72\x64\x65\x72\x65\x64\x44\x69\x63"
    "\x74\x0a\x71\x02\x29\x52\x71\x03\x28\x58\x0b\x00\x00\x00\x63\x6f\x6e\x76\x2e\x77\x65\x69\x67"
    "\x68\x74\x71\x04\x47\x3f\xf8\x00\x00\x00\x00\x00\x00\x58\x09\x00\x00\x00\x63\x6f\x6e\x76\x2e"
    "\x62\x69\x61\x73\x71\x05\x4b\x02\x75\x7d\x71\x06\x58\x09\x00\x00\x00\x5f\x6d\x65\x74\x61\x64"
    "\x61\x74\x61\x71\x07\x68\x02\x29\x52\x71\x08\x28\x58\x00\x00\x00\x00\x71\x09\x7d\x71\x0a\x58"
    "\x07\x00\x00\x00\x76\x65\x72\x73\x69\x6f\x6e\x71\x0b\x4b\x01\x73\x58\x04\x00\x00\x00\x63\x6f"
    "\x6e\x76\x71\x0c\x7d\x71\x0d\x68\x0b\x4b\x01\x73\x75\x73\x62\x58\x05\x00\x00\x00\x65\x70\x6f"
    "\x63\x68\x71\x0e\x4b\x07\x58\x06\x00\x00\x00\x6c\x61\x79\x65\x72\x73\x71\x0f\x5d\x71\x10\x4b"
    "\x03\x61\x75\x2e",
    211);

c10::IValue unpickle(const std::string& pickle) {
  size_t offset = 0;
  torch::jit::Unpickler unpickler(
      [&](char* buffer, size_t length) {
        length = std::min(length, pickle.size() - offset);
        std::memcpy(buffer, pickle.data() + offset, length);
        offset += length;
        return length;
      },
      nullptr, {});
  return unpickler.parse_ivalue();
}

c10::IValue at(const c10::IValue& dict, const std::string& key) {
  return dict.toGenericDict().at(c10::IValue(key));
}

TEST(Pickle, ReadsPythonStateDictsAsLibTorchCannot) {
  // LibTorch alone turns the OrderedDict into None and fails on SETITEM.
  EXPECT_ANY_THROW(unpickle(kStateDictCheckpoint));
  const auto value = unpickle(readable_by_libtorch(kStateDictCheckpoint));
  ASSERT_TRUE(value.isGenericDict());
  EXPECT_EQ(value.toGenericDict().size(), 3u);
  const auto state = at(value, "state_dict");
  ASSERT_TRUE(state.isGenericDict());
  EXPECT_EQ(state.toGenericDict().size(), 2u);  // the _metadata state is dropped
  EXPECT_DOUBLE_EQ(at(state, "conv.weight").toDouble(), 1.5);
  EXPECT_EQ(at(state, "conv.bias").toInt(), 2);
  EXPECT_EQ(at(value, "epoch").toInt(), 7);
  const auto layers = at(value, "layers").toListRef();
  ASSERT_EQ(layers.size(), 1u);
  EXPECT_EQ(layers[0].toInt(), 3);
}

TEST(Pickle, LeavesWhatLibTorchReadsAlone) {
  const std::string plain = readable_by_libtorch(kStateDictCheckpoint);
  EXPECT_EQ(readable_by_libtorch(plain), plain);
}

std::string error_of(const std::string& pickle) {
  try {
    readable_by_libtorch(pickle);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(Pickle, NamesWhatItCannotRead) {
  // pickle.dumps({"a": 1}, protocol=4): FRAME is not a protocol 2 opcode.
  const std::string protocol4(
      "\x80\x04\x95\x0a\x00\x00\x00\x00\x00\x00\x00\x7d\x94\x8c\x01\x61\x94\x4b\x01\x73\x2e", 21);
  EXPECT_EQ(error_of(protocol4),
            "pickle byte 2: opcode 0x95 is not one LibTorch reads (save with protocol 2)");
  EXPECT_EQ(error_of(kStateDictCheckpoint.substr(0, 60)),
            "pickle byte 55: the stream is truncated");
  EXPECT_EQ(error_of(kStateDictCheckpoint.substr(0, 101)),
            "pickle byte 101: the stream ends without STOP");
}

}  // namespace
}  // namespace pretext::pipelines
