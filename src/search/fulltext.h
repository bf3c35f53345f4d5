// Full-text search: the special parameters _text (the narrative, DomainResource.text.div) and
// _content (every text value of the resource) of https://hl7.org/fhir/R4/search.html#text.
// Resources are reduced to words, the words a query names are looked up in a full-text index
// (FTS5 on SQLite, tsvector/GIN on PostgreSQL). Both sides use the same words: text normalized
// by NormalizeString (case- and accent-insensitive), split on anything but letters and digits.
//
// The query syntax (one parameter value; commas OR values as for any parameter):
//   heart failure          both words, anywhere (AND is implied; `and` may be written)
//   "heart failure"        the phrase: the words one after the other
//   diab*                  a word beginning with diab (also "blood pres"* for a phrase)
//   bone OR liver          either
//   (bone OR liver) and metastases
//   cancer NOT lung        the first without the second; NOT needs something it excludes from
// AND, OR and NOT are operators in any case; quote them ("not") to search the word. At most
// kMaxTextTerms words and phrases per value, parentheses nested at most 8 deep; words of more
// than 100 characters are not indexed, and refused in queries. Letters are case- and
// accent-folded by NormalizeString (Latin); other scripts' case folding is the database's
// (FTS5's unicode61, PostgreSQL's lower() of its locale).
// Pure functions: thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "common/json.h"
#include "common/result.h"

namespace fhirstone::search {

struct SearchParam;

constexpr int kMaxTextTerms = 32;

// Whether `p` is the built-in _text or _content parameter (no FHIRPath expression: answered by
// the full-text index, not by index entries).
bool IsFullText(const SearchParam& p);

// The words of a resource, space-separated, as the full-text index keeps them.
struct FullText {
  std::string narrative;  // of text.div (tags left out, character references decoded)
  std::string content;    // of every string and number, the narrative's included; not of ids,
                          // meta, references, URLs, systems and base64 data
};

// At most this much text and this many words per column: the rest of a larger resource is not
// indexed (PostgreSQL keeps word positions up to 16,383, beyond which phrases cannot match).
constexpr size_t kMaxIndexedText = 256 * 1024;
constexpr size_t kMaxIndexedWords = 16000;

FullText ExtractFullText(const json::Value& resource);

// The words of `text`, space-separated, as the index keeps them.
std::string Words(std::string_view text);

enum class TextSyntax {
  kFts5,     // an FTS5 MATCH expression
  kTsQuery,  // a PostgreSQL to_tsquery('simple', ...) text
};

// Translates one _text / _content value into `syntax`. Error::Invalid, saying what is wrong,
// when the value is malformed (unbalanced parentheses or quotes, an operator without operand,
// a NOT with nothing to exclude from, no word at all, too many terms).
Result<std::string> TranslateTextQuery(std::string_view value, TextSyntax syntax);

}  // namespace fhirstone::search
