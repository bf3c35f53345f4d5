// libFuzzer target: arbitrary bytes through json::Parse, then ValidateResource, Summarize (every
// mode) and SelectElements. Run from a fuzz build (FHIRSTONE_FUZZ=ON) with the seed corpus in
// tests/fuzz/corpus/resource/.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "fhir/summary.h"
#include "fhir/validate.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fhirstone;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = json::Parse(text);
  if (!parsed) return 0;
  const json::Value& value = *parsed;
  Status status = fhir::ValidateResource(value);
  if (!status) {
    for (const Issue& issue : status.error().issues()) {
      if (issue.message.empty()) __builtin_trap();
    }
  }
  if (!value.is_object()) return 0;
  for (auto mode : {fhir::SummaryMode::kFalse, fhir::SummaryMode::kTrue, fhir::SummaryMode::kText,
                    fhir::SummaryMode::kData}) {
    json::Value summary = fhir::Summarize(value, mode);
    // Of a valid resource, these summaries keep everything mandatory: they must stay valid.
    bool keeps_valid = mode != fhir::SummaryMode::kTrue;
    if (status && keeps_valid && !fhir::ValidateResource(summary)) __builtin_trap();
    // Writing and parsing again gives the same value.
    auto reparsed = json::Parse(json::Write(summary));
    if (!reparsed || !(*reparsed == summary)) __builtin_trap();
  }
  json::Value selected = fhir::SelectElements(value, {"name", "value", "status"});
  json::Write(selected);
  return 0;
}
