// libFuzzer target: arbitrary bytes as a FHIRPath expression through Compile(), and when it
// compiles, Evaluate() over a small fixed Patient (with a resolver). Must never crash, hang or
// exhaust the stack. Run from a fuzz build (FHIRSTONE_FUZZ=ON) with the seed corpus in
// tests/fuzz/corpus/fhirpath/.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/json.h"
#include "fhirpath/fhirpath.h"

namespace {

constexpr std::string_view kPatient = R"({
  "resourceType": "Patient", "id": "p1", "active": true, "gender": "female",
  "birthDate": "1974-12-25",
  "_birthDate": {"extension": [{"url": "http://example.org/t",
                                "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
  "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"],
            "_given": [null, {"id": "g2"}]},
           {"use": "usual", "given": ["Jim"]}],
  "telecom": [{"system": "phone", "value": "(03) 5555 6473", "rank": 1}],
  "deceasedDateTime": "2015-02-14T13:42:00+10:00",
  "multipleBirthInteger": 3,
  "managingOrganization": {"reference": "Organization/1"},
  "generalPractitioner": [{"reference": "#pr1"}],
  "contained": [{"resourceType": "Practitioner", "id": "pr1", "name": [{"family": "Careful"}]}],
  "extension": [{"url": "http://example.org/q",
                 "valueQuantity": {"value": 1.5, "unit": "mg",
                                   "system": "http://unitsofmeasure.org", "code": "mg"}}]
})";

class FixedClock : public fhirstone::Clock {
 public:
  int64_t NowMicros() override { return 1700000000000000; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fhirstone;
  static const json::Value* patient = new json::Value(*json::Parse(kPatient));
  static const json::Value* organization =
      new json::Value(*json::Parse(R"({"resourceType": "Organization", "name": "Acme"})"));
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto expression = fhirpath::Compile(text);
  if (!expression) {
    if (expression.error().message().empty()) __builtin_trap();
    return 0;
  }
  FixedClock clock;
  fhirpath::EvalOptions options;
  options.clock = &clock;
  options.max_steps = 200000;
  options.resolver = [](std::string_view ref) -> const json::Value* {
    return ref == "Organization/1" ? organization : nullptr;
  };
  Result<fhirpath::Collection> result = (*expression)->Evaluate(*patient, options);
  if (!result) {
    if (result.error().message().empty()) __builtin_trap();
    return 0;
  }
  // Every computed value renders as JSON; every element points into the patient or a resolved
  // resource.
  for (const fhirpath::Item& item : *result) {
    if (item.value) json::Write(*item.value);
    if (item.node == nullptr && item.extension_node == nullptr && !item.value) __builtin_trap();
  }
  fhirpath::AsBoolean(*result);
  return 0;
}
