#include "pipelines/pickle.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <stdexcept>
#include <tuple>
#include <vector>

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/unpickler.h>

namespace pretext::pipelines {
namespace {

// The pickle opcodes of protocol 2 streams (names as in Python's pickletools); LibTorch reads all
// of them except SETITEM and APPEND, which the rewrite replaces.
enum Op : uint8_t {
  kMark = '(',
  kStop = '.',
  kNone = 'N',
  kBinInt = 'J',
  kBinInt1 = 'K',
  kBinInt2 = 'M',
  kBinFloat = 'G',
  kBinUnicode = 'X',
  kBinPersId = 'Q',
  kReduce = 'R',
  kAppend = 'a',
  kAppends = 'e',
  kBuild = 'b',
  kGlobal = 'c',
  kDict = 'd',
  kEmptyDict = '}',
  kList = 'l',
  kEmptyList = ']',
  kBinGet = 'h',
  kLongBinGet = 'j',
  kBinPut = 'q',
  kLongBinPut = 'r',
  kSetItem = 's',
  kSetItems = 'u',
  kTuple = 't',
  kEmptyTuple = ')',
  kProto = 0x80,
  kNewObj = 0x81,
  kTuple1 = 0x85,
  kTuple2 = 0x86,
  kTuple3 = 0x87,
  kNewTrue = 0x88,
  kNewFalse = 0x89,
  kLong1 = 0x8a,
};

/// Copies the stream opcode by opcode, keeping a model of the unpickler's stack (its depth, its
/// MARKs, which slots hold a former OrderedDict) so that it can find where the value under the
/// top of the stack was begun: the place to insert a MARK, or the start of a BUILD state to drop.
class Rewriter {
 public:
  explicit Rewriter(const std::string& in) : in_(in) {}

  std::string run() {
    while (pos_ < in_.size()) {
      at_ = pos_;
      const auto op = static_cast<uint8_t>(in_[pos_++]);
      const std::string arg = read_argument(op);
      if (pending_ != Pending::kNothing) {
        complete_ordered_dict(op, arg);
        continue;
      }
      step(op, arg);
      if (op == kStop) return out_;
    }
    at_ = pos_;
    fail("the stream ends without STOP");
  }

 private:
  enum class Pending { kNothing, kClass, kArguments };
  /// One opcode written to out_: where it starts and the stack after it.
  struct Written {
    size_t start;
    size_t depth;
    size_t marks;
  };

  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("pickle byte " + std::to_string(at_) + ": " + what);
  }

  std::string take(size_t bytes) {
    if (in_.size() - pos_ < bytes) fail("the stream is truncated");
    pos_ += bytes;
    return in_.substr(pos_ - bytes, bytes);
  }

  static uint64_t little_endian(const std::string& bytes) {
    uint64_t value = 0;
    for (size_t i = bytes.size(); i-- > 0;) value = value << 8 | static_cast<uint8_t>(bytes[i]);
    return value;
  }

  std::string line() {
    const auto end = in_.find('\n', pos_);
    if (end == std::string::npos) fail("the stream is truncated");
    return take(end + 1 - pos_);
  }

  std::string read_argument(uint8_t op) {
    switch (op) {
      case kProto:
      case kBinInt1:
      case kBinGet:
      case kBinPut:
        return take(1);
      case kBinInt2:
        return take(2);
      case kBinInt:
      case kLongBinGet:
      case kLongBinPut:
        return take(4);
      case kBinFloat:
        return take(8);
      case kLong1: {
        const auto length = take(1);
        return length + take(static_cast<uint8_t>(length[0]));
      }
      case kBinUnicode: {
        const auto length = take(4);
        return length + take(little_endian(length));
      }
      case kGlobal: {
        const auto module = line();
        return module + line();
      }
      case kMark:
      case kStop:
      case kNone:
      case kBinPersId:
      case kReduce:
      case kAppend:
      case kAppends:
      case kBuild:
      case kDict:
      case kEmptyDict:
      case kList:
      case kEmptyList:
      case kSetItem:
      case kSetItems:
      case kTuple:
      case kEmptyTuple:
      case kNewObj:
      case kTuple1:
      case kTuple2:
      case kTuple3:
      case kNewTrue:
      case kNewFalse:
        return "";
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        fail(std::string("opcode ") + hex + " is not one LibTorch reads (save with protocol 2)");
      }
    }
  }

  /// Writes an opcode and records the stack after it.
  void write(uint8_t op, const std::string& arg) {
    written_.push_back({out_.size(), 0, 0});
    out_ += static_cast<char>(op);
    out_ += arg;
  }
  void record_stack() {
    written_.back().depth = slots_.size();
    written_.back().marks = marks_.size();
  }
  void pop_to(size_t depth) {
    if (depth > slots_.size()) fail("the stack underflows");
    slots_.resize(depth);
  }
  size_t pop_mark() {
    if (marks_.empty()) fail("no MARK to close");
    const size_t depth = marks_.back();
    marks_.pop_back();
    return depth;
  }
  void pop(size_t count) {
    if (count > slots_.size()) fail("the stack underflows");
    pop_to(slots_.size() - count);
  }

  /// The index in written_ after which the stack last held `depth` values and the current marks:
  /// the value now in slot `depth` was begun by the next opcode.
  size_t begun_after(size_t depth) const {
    for (size_t i = written_.size(); i-- > 0;)
      if (written_[i].depth == depth && written_[i].marks == marks_.size()) return i;
    fail("cannot find where a value begins");
  }

  /// Turns SETITEM / APPEND (the top `items` values into the container below) into MARK ...
  /// SETITEMS / APPENDS.
  void with_mark(size_t items, uint8_t op) {
    if (items + 1 > slots_.size()) fail("the stack underflows");
    const size_t container = slots_.size() - items;
    const size_t before = begun_after(container);
    const size_t offset = before + 1 < written_.size() ? written_[before + 1].start : out_.size();
    out_.insert(offset, 1, static_cast<char>(kMark));
    for (size_t i = before + 1; i < written_.size(); ++i) {
      written_[i].start += 1;
      written_[i].marks += 1;
    }
    written_.insert(written_.begin() + static_cast<std::ptrdiff_t>(before) + 1,
                    Written{offset, container, marks_.size() + 1});
    write(op, "");
    pop_to(container);
    record_stack();
  }

  /// BUILD on a former OrderedDict: its state (the `_metadata` attribute) is cut from the output.
  void drop_state() {
    const size_t state = slots_.size() - 1;
    const size_t before = begun_after(state);
    const size_t offset = written_[before + 1].start;
    out_.erase(offset);
    written_.resize(before + 1);
    for (auto it = memo_written_at_.begin(); it != memo_written_at_.end();) {
      if (it->second >= offset) {
        dropped_memo_.insert(it->first);
        it = memo_written_at_.erase(it);
      } else {
        ++it;
      }
    }
    pop_to(state);
  }

  void complete_ordered_dict(uint8_t op, const std::string& arg) {
    if (pending_ == Pending::kClass && (op == kBinPut || op == kLongBinPut)) {
      class_memo_.insert(little_endian(arg));
    } else if (pending_ == Pending::kClass && op == kEmptyTuple) {
      pending_ = Pending::kArguments;
    } else if (pending_ == Pending::kArguments && op == kReduce) {
      pending_ = Pending::kNothing;
      write(kEmptyDict, "");
      slots_.push_back(true);
      record_stack();
    } else {
      fail("collections.OrderedDict is used other than as OrderedDict()");
    }
  }

  void step(uint8_t op, const std::string& arg) {
    if (op == kGlobal && arg == "collections\nOrderedDict\n") {
      pending_ = Pending::kClass;
      return;
    }
    if (op == kBinGet || op == kLongBinGet) {
      const auto id = little_endian(arg);
      if (class_memo_.count(id)) {
        pending_ = Pending::kClass;
        return;
      }
      if (dropped_memo_.count(id)) fail("refers to a value inside a dropped OrderedDict state");
    }
    if (op == kSetItem) return with_mark(2, kSetItems);
    if (op == kAppend) return with_mark(1, kAppends);
    if (op == kBuild) {
      if (slots_.size() < 2) fail("the stack underflows");
      if (slots_[slots_.size() - 2]) return drop_state();
    }
    if (op == kBinPut || op == kLongBinPut) memo_written_at_[little_endian(arg)] = out_.size();
    write(op, arg);
    switch (op) {
      case kMark:
        marks_.push_back(slots_.size());
        break;
      case kNone:
      case kBinInt:
      case kBinInt1:
      case kBinInt2:
      case kBinFloat:
      case kBinUnicode:
      case kGlobal:
      case kEmptyDict:
      case kEmptyList:
      case kEmptyTuple:
      case kBinGet:
      case kLongBinGet:
      case kNewTrue:
      case kNewFalse:
      case kLong1:
        slots_.push_back(false);
        break;
      case kTuple2:
        pop(2);
        slots_.push_back(false);
        break;
      case kTuple3:
        pop(3);
        slots_.push_back(false);
        break;
      case kTuple1:
      case kBinPersId:
        pop(1);
        slots_.push_back(false);
        break;
      case kTuple:
      case kList:
      case kDict:
        pop_to(pop_mark());
        slots_.push_back(false);
        break;
      case kAppends:
      case kSetItems:
        pop_to(pop_mark());
        break;
      case kReduce:
      case kBuild:
      case kNewObj:
        pop(2);
        slots_.push_back(false);
        break;
      default:  // PROTO, BINPUT, LONG_BINPUT, STOP leave the stack as it is
        break;
    }
    record_stack();
  }

  const std::string& in_;
  size_t pos_ = 0;
  size_t at_ = 0;  // offset of the opcode being read, for messages
  std::string out_;
  std::vector<Written> written_;
  std::vector<bool> slots_;  // per stack value: is it a former OrderedDict
  std::vector<size_t> marks_;
  Pending pending_ = Pending::kNothing;
  std::set<uint64_t> class_memo_;               // memo ids holding the OrderedDict class
  std::map<uint64_t, size_t> memo_written_at_;  // memo id -> output offset of its PUT
  std::set<uint64_t> dropped_memo_;             // memo ids whose PUT was cut with a state
};

}  // namespace

std::string readable_by_libtorch(const std::string& pickle) { return Rewriter(pickle).run(); }

c10::IValue read_torch_archive(const std::string& path) {
  caffe2::serialize::PyTorchStreamReader archive(path);
  at::DataPtr data;
  size_t size = 0;
  std::tie(data, size) = archive.getRecord("data.pkl");
  const std::string pickle =
      readable_by_libtorch(std::string(static_cast<const char*>(data.get()), size));
  size_t offset = 0;
  const auto reader = [&](char* buffer, size_t length) {
    length = std::min(length, pickle.size() - offset);
    std::memcpy(buffer, pickle.data() + offset, length);
    offset += length;
    return length;
  };
  const auto read_record = [&](const std::string& name) {
    return std::get<0>(archive.getRecord("data/" + name));
  };
  // Every tensor onto the CPU, whatever device its storage was saved from (a model trained on a
  // GPU is read on a machine without one); callers move it where it is used.
  torch::jit::Unpickler unpickler(reader, nullptr, nullptr, read_record, at::Device(at::kCPU));
  unpickler.set_version(archive.version());
  return unpickler.parse_ivalue();
}

}  // namespace pretext::pipelines
