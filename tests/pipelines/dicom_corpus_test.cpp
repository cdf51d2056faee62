// pydicom's own test corpus, as Debian's python3-pydicom ships it, through `pretext inspect
// --stats`: every file pydicom decodes gives pydicom's values, every other file and a truncated
// copy of each is refused with one message naming the file and the reason, and no output holds an
// identifier of the file. The expected values come from pydicom (tests/golden/dicom_corpus.py).

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/io/test_data.h"

namespace pretext::pipelines {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

// Where pydicom keeps its test files; empty when python3-pydicom is not installed.
std::string pydicom_corpus() {
  std::string out;
  const int status = testing::run_command(
      "/usr/bin/python3 -c 'import os, pydicom.data; "
      "print(os.path.dirname(pydicom.data.__file__))'",
      &out);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return status == 0 && fs::is_directory(out + "/test_files") ? out + "/test_files" : "";
}

// Files pydicom "decodes" that hold no decodable image, and what pretext must say instead.
// The embedded delimiter overwrites 4 bytes of the codestream's SIZ marker (a width of 3.7e9):
// OpenJPEG refuses it, and pydicom's GDCM handler returns GDCM's buffer without checking that
// GDCM failed, so its "values" are whatever memory held (they change from run to run).
const std::map<std::string, std::string> kNotReallyDecoded = {
    {"JPEG2000-embedded-sequence-delimiter.dcm", "OpenJPEG: cannot read the codestream header"}};

// What inspect printed: exit status and the merged output.
struct Inspected {
  int status = 0;
  std::string output;
};

Inspected inspect(const std::string& path) {
  Inspected result;
  // `timeout`: a hang is a failure like a crash, not a stuck test.
  result.status = testing::run_command(
      "timeout 120 " + std::string(PRETEXT_BINARY) + " inspect --stats '" + path + "'",
      &result.output);
  return result;
}

// "values        min -896  mean -119.074  max 1167 HU (after rescale)" -> {min, mean, max}
bool printed_values(const std::string& output, double (&values)[3]) {
  const auto at = output.find("  values        min ");
  if (at == std::string::npos) return false;
  return std::sscanf(output.c_str() + at, "  values        min %lf  mean %lf  max %lf", &values[0],
                     &values[1], &values[2]) == 3;
}

// One clear refusal: exit 2 and a single line "error: PATH: reason".
void expect_refusal(const Inspected& got, const std::string& path, const std::string& why) {
  EXPECT_EQ(got.status, 2) << path << " (" << why << ")\n" << got.output;
  std::string line = got.output;
  while (!line.empty() && line.back() == '\n') line.pop_back();
  EXPECT_EQ(line.find('\n'), std::string::npos) << "more than one line for " << path << ":\n"
                                                << got.output;
  EXPECT_EQ(line.rfind("error: " + path + ": ", 0), 0u) << got.output;
}

bool contains_any(const std::string& text, std::initializer_list<const char*> words) {
  for (const char* word : words)
    if (text.find(word) != std::string::npos) return true;
  return false;
}

TEST(DicomCorpus, PydicomTestFilesAreReadAsPydicomReadsThemOrRefusedClearly) {
  const std::string corpus = pydicom_corpus();
  if (corpus.empty())
    GTEST_SKIP() << "python3-pydicom is not installed (scripts/install_deps.sh --test installs it)";
  testing::TempDir dir;
  std::string said;
  ASSERT_EQ(testing::run_command("/usr/bin/python3 " + std::string(PRETEXT_SOURCE_DIR) +
                                     "/tests/golden/dicom_corpus.py '" + corpus + "' " +
                                     (dir / "golden.json"),
                                 &said),
            0)
      << said;
  std::ifstream in(dir / "golden.json");
  const json golden = json::parse(in)["files"];
  ASSERT_GE(golden.size(), 50u) << "the corpus has fewer files than Debian's pydicom ships";
  int decoded = 0, refused = 0;
  for (const auto& [name, expected] : golden.items()) {
    SCOPED_TRACE(name);
    const std::string copy = dir / name, cut = dir / ("cut_" + name);
    fs::copy_file(corpus + "/" + name, copy);
    fs::copy_file(corpus + "/" + name, cut);
    testing::truncate_file(cut, 0.7);
    const Inspected got = inspect(copy), got_cut = inspect(cut);
    for (const auto& secret : expected["identifiers"]) {
      const std::string value = secret.get<std::string>();
      EXPECT_EQ(got.output.find(value), std::string::npos) << "identifier in the output";
      EXPECT_EQ(got_cut.output.find(value), std::string::npos) << "identifier in the output";
    }
    const bool has_pixels = expected.value("has_pixels", false);
    if (kNotReallyDecoded.count(name)) {
      expect_refusal(got, copy, "no decodable image");
      EXPECT_NE(got.output.find(kNotReallyDecoded.at(name)), std::string::npos) << got.output;
    } else if (expected["decoded"]) {
      ++decoded;
      ASSERT_EQ(got.status, 0) << "pydicom decodes it, pretext refuses it:\n" << got.output;
      double values[3] = {};
      ASSERT_TRUE(printed_values(got.output, values)) << got.output;
      // Lossy JPEG is decoded by two IJG-derived codecs; anything else must agree to the six
      // digits inspect prints.
      const bool lossy = contains_any(name, {"lossy", "JPGExtended", "J2KI"});
      const double range = expected["max"].get<double>() - expected["min"].get<double>();
      const double slack = lossy ? 0.01 * range : 0.0;
      int i = 0;
      for (const char* key : {"min", "mean", "max"}) {
        const double want = expected[key].get<double>();
        EXPECT_LE(std::abs(values[i++] - want), slack + 5e-6 * std::abs(want) + 1e-9)
            << key << ": pretext " << values[i - 1] << ", pydicom " << want << "\n"
            << got.output;
      }
    } else {
      ++refused;
      if (got.status == 0) {
        // pretext reads more than pydicom (badVR.dcm trips pydicom over its own formatting);
        // it must then be a real image with values, not a silent success.
        EXPECT_TRUE(has_pixels) << got.output;
        double values[3] = {};
        EXPECT_TRUE(printed_values(got.output, values)) << got.output;
      } else {
        expect_refusal(got, copy, expected.value("pydicom", "no pixel data"));
        if (expected.contains("has_pixels") && !has_pixels) {
          EXPECT_TRUE(contains_any(got.output,
                                   {"structured report", "RT plan", "waveform", "RT structure set",
                                    "presentation state", "no pixel data", "truncated"}))
              << got.output;
        }
      }
    }
    // A truncated copy is refused with one clear message; a readable image's says it is truncated.
    expect_refusal(got_cut, cut, "truncated copy");
    if (got.status == 0) {
      EXPECT_NE(got_cut.output.find("truncated"), std::string::npos) << got_cut.output;
    }
  }
  EXPECT_GE(decoded, 40);
  EXPECT_GE(refused, 10);
}

}  // namespace
}  // namespace pretext::pipelines
