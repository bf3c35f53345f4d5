#include "search/fulltext.h"

#include <cstdint>
#include <iterator>
#include <optional>
#include <vector>

#include "common/strings.h"
#include "search/normalize.h"
#include "search/registry.h"

namespace fhirstone::search {
namespace {

// Longer "words" (encoded data, long identifiers), in characters, are not indexed; a query
// naming one is refused.
constexpr size_t kMaxWord = 100;
constexpr int kMaxDepth = 8;

struct Range {
  uint32_t low, high;
};

// The characters of words beyond ASCII letters and digits: the letters, digits and combining
// marks of the common scripts. Everything else (punctuation, symbols, emoji, spaces of any kind)
// separates words, so that no "word" is one that a database's own tokenizer would drop.
constexpr Range kWordRanges[] = {
    {0xAA, 0xAA},     {0xB2, 0xB3},     {0xB5, 0xB5},     {0xB9, 0xBA},     {0xC0, 0xD6},
    {0xD8, 0xF6},     {0xF8, 0x2AF},    {0x300, 0x36F},   {0x370, 0x373},   {0x376, 0x377},
    {0x37B, 0x37D},   {0x386, 0x386},   {0x388, 0x3F5},   {0x3F7, 0x481},   {0x483, 0x52F},
    {0x531, 0x556},   {0x561, 0x587},   {0x591, 0x5BD},   {0x5BF, 0x5BF},   {0x5C1, 0x5C2},
    {0x5C4, 0x5C5},   {0x5C7, 0x5C7},   {0x5D0, 0x5EA},   {0x5F0, 0x5F2},   {0x610, 0x61A},
    {0x620, 0x669},   {0x66E, 0x6D3},   {0x6D5, 0x6DC},   {0x6DF, 0x6E8},   {0x6EA, 0x6FC},
    {0x6FF, 0x6FF},   {0x900, 0x963},   {0x966, 0x96F},   {0x971, 0x97F},   {0x980, 0x9F1},
    {0xA00, 0xAEF},   {0xB00, 0xB6F},   {0xB82, 0xBEF},   {0xC00, 0xC6F},   {0xC80, 0xCEF},
    {0xD00, 0xD6F},   {0xD7A, 0xD7F},   {0xE01, 0xE3A},   {0xE40, 0xE4E},   {0xE50, 0xE59},
    {0x10A0, 0x10FA}, {0x1100, 0x11FF}, {0x1E00, 0x1FBC}, {0x1FC2, 0x1FCC}, {0x1FD0, 0x1FDB},
    {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FFC}, {0x3041, 0x3096}, {0x3099, 0x309A}, {0x309D, 0x309F},
    {0x30A1, 0x30FA}, {0x30FC, 0x30FF}, {0x3105, 0x312F}, {0x3131, 0x318E}, {0x3400, 0x4DBF},
    {0x4E00, 0x9FFF}, {0xAC00, 0xD7A3}, {0xF900, 0xFAFF}, {0xFF10, 0xFF19}, {0xFF21, 0xFF3A},
    {0xFF41, 0xFF5A},
};

bool IsWordCodePoint(uint32_t cp) {
  size_t lo = 0, hi = std::size(kWordRanges);
  while (lo < hi) {  // the first range whose end is at or after cp
    size_t mid = (lo + hi) / 2;
    if (kWordRanges[mid].high < cp) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo < std::size(kWordRanges) && kWordRanges[lo].low <= cp;
}

// Calls f(word, characters) for each word of normalized text `s`: runs of ASCII letters and
// digits and of the word characters above (invalid UTF-8 separates).
template <typename F>
void ForEachWord(std::string_view s, F&& f) {
  size_t start = std::string_view::npos, characters = 0;
  auto emit = [&](size_t end) {
    if (start != std::string_view::npos) f(s.substr(start, end - start), characters);
    start = std::string_view::npos;
    characters = 0;
  };
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t len = 1;
    bool word;
    if (c < 0x80) {
      word = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    } else {
      uint32_t cp = 0x80;  // a separator unless well-formed
      size_t n = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
      if (n && i + n <= s.size()) {
        uint32_t v = c & (0x7F >> n);
        bool ok = true;
        for (size_t k = 1; k < n && ok; ++k) {
          auto b = static_cast<unsigned char>(s[i + k]);
          ok = (b & 0xC0) == 0x80;
          v = (v << 6) | (b & 0x3F);
        }
        if (ok) {
          cp = v;
          len = n;
        }
      }
      word = IsWordCodePoint(cp);
    }
    if (word) {
      if (start == std::string_view::npos) start = i;
      ++characters;
    } else {
      emit(i);
    }
    i += len;
  }
  emit(s.size());
}

// Collects the words of one column within its limits.
class WordSink {
 public:
  explicit WordSink(std::string& out) : out_(out) {}
  void Add(std::string_view text) {
    if (full_) return;
    ForEachWord(NormalizeString(text), [&](std::string_view w, size_t characters) {
      if (full_ || characters > kMaxWord) return;
      if (words_ >= kMaxIndexedWords || out_.size() + w.size() + 1 > kMaxIndexedText) {
        full_ = true;
        return;
      }
      if (!out_.empty()) out_ += ' ';
      out_ += w;
      ++words_;
    });
  }
  bool full() const { return full_; }

 private:
  std::string& out_;
  size_t words_ = 0;
  bool full_ = false;
};

// The text of an XHTML fragment: tags become spaces, character references are decoded.
std::string NarrativeText(std::string_view div) {
  std::string out;
  out.reserve(div.size());
  for (size_t i = 0; i < div.size(); ++i) {
    char c = div[i];
    if (c == '<') {
      size_t end = div.find('>', i);
      if (end == std::string_view::npos) break;
      out += ' ';
      i = end;
    } else if (c == '&') {
      // A character reference is short: look for its ';' nearby only (linear time).
      size_t semi = div.substr(i, 13).find(';');
      if (semi == std::string_view::npos) {
        out += ' ';
        continue;
      }
      std::string_view name = div.substr(i + 1, semi - 1);
      i += semi;
      if (name == "amp") {
        out += '&';
      } else if (name == "lt") {
        out += '<';
      } else if (name == "gt") {
        out += '>';
      } else if (name == "quot") {
        out += '"';
      } else if (name == "apos") {
        out += '\'';
      } else if (name.size() > 1 && name[0] == '#') {
        bool hex = name[1] == 'x' || name[1] == 'X';
        uint32_t cp = 0;
        bool ok = name.size() > (hex ? 2u : 1u);
        for (char d : name.substr(hex ? 2 : 1)) {
          int digit = d >= '0' && d <= '9'          ? d - '0'
                      : hex && d >= 'a' && d <= 'f' ? d - 'a' + 10
                      : hex && d >= 'A' && d <= 'F' ? d - 'A' + 10
                                                    : -1;
          if (digit < 0 || cp > 0x10FFFF) {
            ok = false;
            break;
          }
          cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(digit);
        }
        // NUL, surrogates and numbers beyond Unicode separate words.
        if (ok && cp != 0 && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF)) {
          AppendUtf8(cp, out);
        } else {
          out += ' ';
        }
      } else {
        out += ' ';  // &nbsp; and other named references
      }
    } else {
      out += c;
    }
  }
  return out;
}

bool SkippedKey(std::string_view key) {
  return key == "resourceType" || key == "id" || key == "meta" || key == "reference" ||
         key == "url" || key == "system" || key == "fullUrl" || key == "data";
}

void Walk(const json::Value& v, WordSink& sink) {
  if (sink.full()) return;
  if (v.is_object()) {
    for (const auto& [key, value] : v.as_object()) {
      if (SkippedKey(key)) continue;
      if (key == "div" && value.is_string()) {
        sink.Add(NarrativeText(value.as_string()));
      } else {
        Walk(value, sink);
      }
    }
  } else if (v.is_array()) {
    for (const json::Value& item : v.as_array()) Walk(item, sink);
  } else if (v.is_string() || v.is_number()) {
    sink.Add(v.as_string());
  }
}

// --- queries ---

struct Token {
  enum Kind { kTerm, kOpen, kClose, kAnd, kOr, kNot, kEnd } kind;
  std::vector<std::string> words;  // kTerm
  bool prefix = false;             // kTerm: the last word is a prefix
};

Result<std::vector<std::string>> WordsOf(std::string_view text) {
  std::vector<std::string> words;
  bool too_long = false;
  ForEachWord(NormalizeString(text), [&](std::string_view w, size_t characters) {
    too_long |= characters > kMaxWord;
    words.emplace_back(w);
  });
  if (too_long)
    return Error::Invalid("Words longer than " + std::to_string(kMaxWord) +
                          " characters are not indexed, so cannot be searched");
  return words;
}

Result<std::vector<Token>> Lex(std::string_view s) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      ++i;
    } else if (c == '(') {
      out.push_back({Token::kOpen, {}});
      ++i;
    } else if (c == ')') {
      out.push_back({Token::kClose, {}});
      ++i;
    } else if (c == '"') {
      size_t end = s.find('"', i + 1);
      if (end == std::string_view::npos) return Error::Invalid("A quote is not closed");
      auto words = WordsOf(s.substr(i + 1, end - i - 1));
      if (!words) return std::move(words).error();
      Token t{Token::kTerm, std::move(*words)};
      if (t.words.empty())
        return Error::Invalid("The phrase \"" + std::string(s.substr(i + 1, end - i - 1)) +
                              "\" holds no word to search");
      i = end + 1;
      if (i < s.size() && s[i] == '*') {
        t.prefix = true;
        while (i < s.size() && s[i] == '*') ++i;
      }
      out.push_back(std::move(t));
    } else {
      size_t end = s.find_first_of(" \t\n\r()\"", i);
      if (end == std::string_view::npos) end = s.size();
      std::string_view bare = s.substr(i, end - i);
      i = end;
      bool prefix = bare.ends_with('*');
      while (bare.ends_with('*')) bare.remove_suffix(1);
      std::string upper;
      for (char b : bare) upper += static_cast<char>(b >= 'a' && b <= 'z' ? b - 32 : b);
      if (!prefix && upper == "AND") {
        out.push_back({Token::kAnd, {}});
      } else if (!prefix && upper == "OR") {
        out.push_back({Token::kOr, {}});
      } else if (!prefix && upper == "NOT") {
        out.push_back({Token::kNot, {}});
      } else {
        auto words = WordsOf(bare);
        if (!words) return std::move(words).error();
        Token t{Token::kTerm, std::move(*words)};
        t.prefix = prefix;
        if (!t.words.empty()) out.push_back(std::move(t));  // punctuation alone separates
      }
    }
  }
  out.push_back({Token::kEnd, {}});
  return out;
}

struct Node {
  enum Kind { kTerm, kAnd, kOr, kNot } kind;
  std::vector<std::string> words{};
  bool prefix = false;
  std::vector<Node> children{};
};

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Result<Node> Parse() {
    auto n = ParseOr(0);
    if (!n) return n;
    if (Peek() == Token::kClose) return Error::Invalid("A ')' has no '(' to close");
    if (Peek() != Token::kEnd) return Error::Invalid("Unexpected text after the query");
    return n;
  }

 private:
  Token::Kind Peek() const { return tokens_[pos_].kind; }

  Result<Node> ParseOr(int depth) {
    auto first = ParseAnd(depth);
    if (!first) return first;
    if (Peek() != Token::kOr) return first;
    Node n{Node::kOr};
    n.children.push_back(std::move(*first));
    while (Peek() == Token::kOr) {
      ++pos_;
      auto next = ParseAnd(depth);
      if (!next) return next;
      n.children.push_back(std::move(*next));
    }
    return n;
  }

  static bool StartsOperand(Token::Kind k) {
    return k == Token::kTerm || k == Token::kOpen || k == Token::kNot;
  }

  Result<Node> ParseAnd(int depth) {
    Node n{Node::kAnd};
    while (true) {
      if (Peek() == Token::kAnd) {
        if (n.children.empty()) return Error::Invalid("AND needs a word or phrase before it");
        ++pos_;
        if (!StartsOperand(Peek())) return Error::Invalid("AND needs a word or phrase after it");
      } else if (!StartsOperand(Peek())) {
        break;
      }
      auto item = ParseUnary(depth);
      if (!item) return item;
      n.children.push_back(std::move(*item));
    }
    if (n.children.empty()) {
      if (Peek() == Token::kOr) return Error::Invalid("OR needs a word or phrase on each side");
      if (Peek() == Token::kClose) return Error::Invalid("Empty parentheses");
      return Error::Invalid("The text to search holds no word");
    }
    if (n.children.size() == 1) return std::move(n.children[0]);
    return n;
  }

  Result<Node> ParseUnary(int depth) {
    if (Peek() == Token::kNot) {
      ++pos_;
      if (!StartsOperand(Peek()) || Peek() == Token::kNot)
        return Error::Invalid("NOT needs a word, phrase or parenthesis after it");
      auto child = ParseUnary(depth);
      if (!child) return child;
      Node n{Node::kNot};
      n.children.push_back(std::move(*child));
      return n;
    }
    if (Peek() == Token::kOpen) {
      if (depth >= kMaxDepth)
        return Error::Invalid("Parentheses are nested more than " + std::to_string(kMaxDepth) +
                              " deep");
      ++pos_;
      auto inner = ParseOr(depth + 1);
      if (!inner) return inner;
      if (Peek() != Token::kClose) return Error::Invalid("A '(' is not closed");
      ++pos_;
      return inner;
    }
    Token& t = tokens_[pos_++];
    if (++terms_ > kMaxTextTerms)
      return Error::Invalid("At most " + std::to_string(kMaxTextTerms) +
                            " words and phrases per text search");
    Node n{Node::kTerm};
    n.words = std::move(t.words);
    n.prefix = t.prefix;
    return n;
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int terms_ = 0;
};

Status Render(const Node& n, TextSyntax syntax, std::string& out);

Status NotAlone() {
  return Error::Invalid(
      "NOT excludes from what comes before it, as in 'cancer NOT lung'; it cannot stand alone");
}

Status RenderAnd(const Node& n, TextSyntax syntax, std::string& out) {
  std::vector<const Node*> positive, negative;
  for (const Node& c : n.children) (c.kind == Node::kNot ? negative : positive).push_back(&c);
  if (positive.empty()) return NotAlone();
  bool fts = syntax == TextSyntax::kFts5;
  out += '(';
  if (fts && !negative.empty()) out += '(';
  for (size_t i = 0; i < positive.size(); ++i) {
    if (i) out += fts ? " AND " : " & ";
    FHIRSTONE_RETURN_IF_ERROR(Render(*positive[i], syntax, out));
  }
  if (fts && !negative.empty()) out += ')';
  for (const Node* neg : negative) {
    out += fts ? " NOT " : " & !";
    FHIRSTONE_RETURN_IF_ERROR(Render(neg->children[0], syntax, out));
  }
  out += ')';
  return Ok();
}

Status Render(const Node& n, TextSyntax syntax, std::string& out) {
  bool fts = syntax == TextSyntax::kFts5;
  switch (n.kind) {
    case Node::kTerm:
      if (fts) {
        out += '"';
        for (size_t i = 0; i < n.words.size(); ++i) {
          if (i) out += ' ';
          out += n.words[i];
        }
        out += n.prefix ? "\"*" : "\"";
      } else {
        // Quoted: the text of a word is never read as tsquery syntax, whatever the locale.
        out += '(';
        for (size_t i = 0; i < n.words.size(); ++i) {
          if (i) out += " <-> ";
          out += '\'';
          for (char ch : n.words[i]) {
            if (ch == '\'' || ch == '\\') out += ch;
            out += ch;
          }
          out += '\'';
        }
        out += n.prefix ? ":*)" : ")";
      }
      return Ok();
    case Node::kAnd:
      return RenderAnd(n, syntax, out);
    case Node::kOr:
      out += '(';
      for (size_t i = 0; i < n.children.size(); ++i) {
        if (n.children[i].kind == Node::kNot) return NotAlone();
        if (i) out += fts ? " OR " : " | ";
        FHIRSTONE_RETURN_IF_ERROR(Render(n.children[i], syntax, out));
      }
      out += ')';
      return Ok();
    case Node::kNot:
      return NotAlone();
  }
  return Ok();
}

}  // namespace

bool IsFullText(const SearchParam& p) {
  return p.expression.empty() && (p.code == "_text" || p.code == "_content") &&
         (p.base == "Resource" || p.base == "DomainResource");
}

std::string Words(std::string_view text) {
  std::string out;
  WordSink(out).Add(text);
  return out;
}

FullText ExtractFullText(const json::Value& resource) {
  FullText t;
  if (const json::Value* text = resource.Find("text"); text && text->is_object()) {
    if (const json::Value* div = text->Find("div"); div && div->is_string())
      WordSink(t.narrative).Add(NarrativeText(div->as_string()));
  }
  WordSink content(t.content);
  Walk(resource, content);
  return t;
}

Result<std::string> TranslateTextQuery(std::string_view value, TextSyntax syntax) {
  auto tokens = Lex(value);
  if (!tokens) return std::move(tokens).error();
  auto tree = Parser(std::move(*tokens)).Parse();
  if (!tree) return std::move(tree).error();
  std::string out;
  FHIRSTONE_RETURN_IF_ERROR(Render(*tree, syntax, out));
  return out;
}

}  // namespace fhirstone::search
