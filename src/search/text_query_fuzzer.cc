// libFuzzer target: arbitrary bytes as a _text / _content value through TranslateTextQuery()
// (both syntaxes), and as a narrative through ExtractFullText(). Must never crash, hang or
// exhaust the stack; a translated query must be balanced. Run from a fuzz build
// (FHIRSTONE_FUZZ=ON) with the seed corpus in tests/fuzz/corpus/textquery/.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/json.h"
#include "search/fulltext.h"

namespace {

// Parentheses and quotes of a translation pair up.
void CheckBalanced(const std::string& s) {
  int depth = 0;
  size_t quotes = 0;
  for (char c : s) {
    if (c == '(') ++depth;
    if (c == ')' && --depth < 0) std::abort();
    if (c == '"') ++quotes;
  }
  if (depth != 0 || quotes % 2 != 0) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  for (auto syntax :
       {fhirstone::search::TextSyntax::kFts5, fhirstone::search::TextSyntax::kTsQuery}) {
    auto q = fhirstone::search::TranslateTextQuery(input, syntax);
    if (q) CheckBalanced(*q);
  }
  fhirstone::json::Value resource = fhirstone::json::Value::EmptyObject();
  fhirstone::json::Value text = fhirstone::json::Value::EmptyObject();
  text.Set("div", std::string(input));
  resource.Set("text", std::move(text));
  resource.Set("note", std::string(input));
  fhirstone::search::FullText t = fhirstone::search::ExtractFullText(resource);
  if (t.content.size() > fhirstone::search::kMaxIndexedText) std::abort();
  return 0;
}
