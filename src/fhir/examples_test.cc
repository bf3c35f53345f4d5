// Every official R4 example resource (FHIR_EXAMPLES_DIR) parses and passes ValidateResource, and
// survives the summary modes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "fhir/summary.h"
#include "fhir/validate.h"

namespace fhirstone::fhir {
namespace {

std::vector<std::filesystem::path> ExampleFiles() {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(FHIR_EXAMPLES_DIR)) {
    if (entry.is_regular_file() && entry.path().extension() == ".json")
      files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Official examples that break the base R4 definitions themselves, with the one issue message
// each of their issues must carry. Questionnaire-qs1.json leaves out Questionnaire.item.linkId
// (1..1) in 32 nested items; it is invalid R4 and the validator must say so.
struct KnownInvalid {
  std::string_view file;
  size_t issues;
  std::string_view message;
};
constexpr KnownInvalid kKnownInvalid[] = {
    {"Questionnaire-qs1.json", 32, "Missing required element 'linkId'"},
};

const KnownInvalid* FindKnownInvalid(const std::string& file) {
  for (const KnownInvalid& k : kKnownInvalid)
    if (k.file == file) return &k;
  return nullptr;
}

TEST(ExamplesTest, EveryOfficialExampleIsValid) {
  std::vector<std::filesystem::path> files = ExampleFiles();
  ASSERT_EQ(files.size(), 708u) << "in " << FHIR_EXAMPLES_DIR;
  int passed = 0;
  int known_invalid = 0;
  std::string failures;
  for (const auto& path : files) {
    auto parsed = json::Parse(ReadFile(path));
    if (!parsed) {
      failures += path.filename().string() + ": " + parsed.error().message() + "\n";
      continue;
    }
    Status status = ValidateResource(*parsed);
    if (const KnownInvalid* known = FindKnownInvalid(path.filename().string())) {
      EXPECT_FALSE(status) << path.filename();
      if (status) continue;
      EXPECT_EQ(status.error().issues().size(), known->issues) << path.filename();
      for (const Issue& issue : status.error().issues())
        EXPECT_EQ(issue.message, known->message) << path.filename() << " " << issue.expression;
      ++known_invalid;
      continue;
    }
    if (!status) {
      failures += path.filename().string() + ":\n";
      for (const Issue& issue : status.error().issues())
        failures += "  " + issue.expression + ": " + issue.message + "\n";
      continue;
    }
    // Summaries that keep all mandatory elements stay valid.
    for (SummaryMode mode : {SummaryMode::kText, SummaryMode::kData}) {
      Status summary = ValidateResource(Summarize(*parsed, mode));
      if (!summary) {
        failures += path.filename().string() + " (summary): " + summary.error().message() + " at " +
                    summary.error().issues()[0].expression + "\n";
      }
    }
    ++passed;
  }
  EXPECT_EQ(known_invalid, static_cast<int>(std::size(kKnownInvalid)));
  EXPECT_EQ(passed + known_invalid, static_cast<int>(files.size())) << failures;
  std::printf("%d of %zu official examples valid; %d known invalid\n", passed, files.size(),
              known_invalid);
  EXPECT_EQ(failures, "");
}

// Adds an unknown member to every object of `v`; returns how many objects there were.
int PoisonEveryObject(json::Value& v) {
  int count = 0;
  if (v.is_array()) {
    for (json::Value& item : v.as_array()) count += PoisonEveryObject(item);
  } else if (v.is_object()) {
    for (auto& member : v.as_object()) count += PoisonEveryObject(member.second);
    v.as_object().emplace_back("fhirstoneUnknown", json::Value(true));
    ++count;
  }
  return count;
}

// The validator visits every object of every example: an unknown member anywhere is reported.
TEST(ExamplesTest, UnknownMembersAreFoundEverywhere) {
  int files = 0;
  for (const auto& path : ExampleFiles()) {
    auto parsed = json::Parse(ReadFile(path));
    ASSERT_TRUE(parsed) << path;
    json::Value poisoned = *parsed;
    int objects = PoisonEveryObject(poisoned);
    Status status = ValidateResource(poisoned, ValidateOptions{.max_issues = 1000000});
    ASSERT_FALSE(status) << path;
    int unknown = 0;
    for (const Issue& issue : status.error().issues())
      unknown += issue.message == "Unknown element 'fhirstoneUnknown'";
    EXPECT_EQ(unknown, objects) << path.filename();
    ++files;
  }
  EXPECT_EQ(files, 708);
}

}  // namespace
}  // namespace fhirstone::fhir
