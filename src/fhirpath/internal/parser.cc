#include "fhirpath/internal/parser.h"

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "common/strings.h"

namespace fhirstone::fhirpath::internal {
namespace {

constexpr uint8_t kL0 = 1;  // lambda_mask bit of argument 0
constexpr uint8_t kL1 = 2;

constexpr FunctionInfo kFunctions[] = {
    {"empty", Function::kEmpty, 0, 0, 0, false},
    {"exists", Function::kExists, 0, 1, kL0, false},
    {"all", Function::kAll, 1, 1, kL0, false},
    {"allTrue", Function::kAllTrue, 0, 0, 0, false},
    {"anyTrue", Function::kAnyTrue, 0, 0, 0, false},
    {"allFalse", Function::kAllFalse, 0, 0, 0, false},
    {"anyFalse", Function::kAnyFalse, 0, 0, 0, false},
    {"subsetOf", Function::kSubsetOf, 1, 1, 0, false},
    {"supersetOf", Function::kSupersetOf, 1, 1, 0, false},
    {"count", Function::kCount, 0, 0, 0, false},
    {"distinct", Function::kDistinct, 0, 0, 0, false},
    {"isDistinct", Function::kIsDistinct, 0, 0, 0, false},
    {"where", Function::kWhere, 1, 1, kL0, false},
    {"select", Function::kSelect, 1, 1, kL0, false},
    {"repeat", Function::kRepeat, 1, 1, kL0, false},
    {"ofType", Function::kOfType, 1, 1, 0, true},
    {"single", Function::kSingle, 0, 0, 0, false},
    {"first", Function::kFirst, 0, 0, 0, false},
    {"last", Function::kLast, 0, 0, 0, false},
    {"tail", Function::kTail, 0, 0, 0, false},
    {"skip", Function::kSkip, 1, 1, 0, false},
    {"take", Function::kTake, 1, 1, 0, false},
    {"intersect", Function::kIntersect, 1, 1, 0, false},
    {"exclude", Function::kExclude, 1, 1, 0, false},
    {"union", Function::kUnion, 1, 1, 0, false},
    {"combine", Function::kCombine, 1, 1, 0, false},
    {"iif", Function::kIif, 2, 3, 0, false},
    {"toBoolean", Function::kToBoolean, 0, 0, 0, false},
    {"convertsToBoolean", Function::kConvertsToBoolean, 0, 0, 0, false},
    {"toInteger", Function::kToInteger, 0, 0, 0, false},
    {"convertsToInteger", Function::kConvertsToInteger, 0, 0, 0, false},
    {"toDecimal", Function::kToDecimal, 0, 0, 0, false},
    {"convertsToDecimal", Function::kConvertsToDecimal, 0, 0, 0, false},
    {"toString", Function::kToString, 0, 0, 0, false},
    {"convertsToString", Function::kConvertsToString, 0, 0, 0, false},
    {"toDate", Function::kToDate, 0, 0, 0, false},
    {"convertsToDate", Function::kConvertsToDate, 0, 0, 0, false},
    {"toDateTime", Function::kToDateTime, 0, 0, 0, false},
    {"convertsToDateTime", Function::kConvertsToDateTime, 0, 0, 0, false},
    {"toTime", Function::kToTime, 0, 0, 0, false},
    {"convertsToTime", Function::kConvertsToTime, 0, 0, 0, false},
    {"toQuantity", Function::kToQuantity, 0, 1, 0, false},
    {"convertsToQuantity", Function::kConvertsToQuantity, 0, 1, 0, false},
    {"indexOf", Function::kIndexOf, 1, 1, 0, false},
    {"substring", Function::kSubstring, 1, 2, 0, false},
    {"startsWith", Function::kStartsWith, 1, 1, 0, false},
    {"endsWith", Function::kEndsWith, 1, 1, 0, false},
    {"contains", Function::kContains, 1, 1, 0, false},
    {"upper", Function::kUpper, 0, 0, 0, false},
    {"lower", Function::kLower, 0, 0, 0, false},
    {"replace", Function::kReplace, 2, 2, 0, false},
    {"matches", Function::kMatches, 1, 1, 0, false},
    {"replaceMatches", Function::kReplaceMatches, 2, 2, 0, false},
    {"length", Function::kLength, 0, 0, 0, false},
    {"toChars", Function::kToChars, 0, 0, 0, false},
    {"trim", Function::kTrim, 0, 0, 0, false},
    {"split", Function::kSplit, 1, 1, 0, false},
    {"join", Function::kJoin, 0, 1, 0, false},
    {"abs", Function::kAbs, 0, 0, 0, false},
    {"ceiling", Function::kCeiling, 0, 0, 0, false},
    {"exp", Function::kExp, 0, 0, 0, false},
    {"floor", Function::kFloor, 0, 0, 0, false},
    {"ln", Function::kLn, 0, 0, 0, false},
    {"log", Function::kLog, 1, 1, 0, false},
    {"power", Function::kPower, 1, 1, 0, false},
    {"round", Function::kRound, 0, 1, 0, false},
    {"sqrt", Function::kSqrt, 0, 0, 0, false},
    {"truncate", Function::kTruncate, 0, 0, 0, false},
    {"children", Function::kChildren, 0, 0, 0, false},
    {"descendants", Function::kDescendants, 0, 0, 0, false},
    {"trace", Function::kTrace, 1, 2, kL1, false},
    {"now", Function::kNow, 0, 0, 0, false},
    {"timeOfDay", Function::kTimeOfDay, 0, 0, 0, false},
    {"today", Function::kToday, 0, 0, 0, false},
    {"not", Function::kNot, 0, 0, 0, false},
    {"is", Function::kIs, 1, 1, 0, true},
    {"as", Function::kAs, 1, 1, 0, true},
    {"aggregate", Function::kAggregate, 1, 2, kL0, false},
    {"extension", Function::kExtension, 1, 1, 0, false},
    {"resolve", Function::kResolve, 0, 0, 0, false},
    {"hasValue", Function::kHasValue, 0, 0, 0, false},
    {"getValue", Function::kGetValue, 0, 0, 0, false},
    {"htmlChecks", Function::kHtmlChecks, 0, 0, 0, false},
};

enum class Tok : uint8_t {
  kEnd,
  kIdentifier,
  kDelimitedIdentifier,
  kString,
  kNumber,
  kTemporal,  // @... (value: the text after '@'; temporal_type says which)
  kConstant,  // %name
  kSpecial,   // $this, $index, $total
  kLParen,
  kRParen,
  kLBracket,
  kRBracket,
  kLBrace,
  kRBrace,
  kDot,
  kComma,
  kPlus,
  kMinus,
  kStar,
  kSlash,
  kAmp,
  kPipe,
  kEq,
  kNe,
  kTilde,
  kNotTilde,
  kLt,
  kGt,
  kLe,
  kGe,
};

struct Token {
  Tok kind = Tok::kEnd;
  uint32_t pos = 0;
  std::string value;  // identifier / unescaped string / number text / constant name / temporal
  SysType temporal_type = SysType::kNode;
};

bool IsIdentStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool IsIdentPart(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

Error SyntaxError(std::string_view text, size_t pos, std::string_view message) {
  return Error::Invalid("FHIRPath: " + std::string(message) + " at position " + std::to_string(pos),
                        std::string(text));
}

class Lexer {
 public:
  explicit Lexer(std::string_view text) : text_(text) {}

  Result<std::vector<Token>> Run() {
    std::vector<Token> tokens;
    while (true) {
      Result<Token> t = Next();
      if (!t) return std::move(t).error();
      bool end = t->kind == Tok::kEnd;
      tokens.push_back(std::move(*t));
      if (end) return tokens;
    }
  }

 private:
  Result<Token> Next() {
    if (auto err = SkipSpaceAndComments(); !err) return std::move(err).error();
    Token t;
    t.pos = static_cast<uint32_t>(p_);
    if (p_ >= text_.size()) return t;
    char c = text_[p_];
    if (IsIdentStart(c)) {
      size_t start = p_;
      while (p_ < text_.size() && IsIdentPart(text_[p_])) ++p_;
      t.kind = Tok::kIdentifier;
      t.value = std::string(text_.substr(start, p_ - start));
      return t;
    }
    if (IsDigit(c)) {
      size_t start = p_;
      while (p_ < text_.size() && IsDigit(text_[p_])) ++p_;
      if (p_ + 1 < text_.size() && text_[p_] == '.' && IsDigit(text_[p_ + 1])) {
        ++p_;
        while (p_ < text_.size() && IsDigit(text_[p_])) ++p_;
      }
      t.kind = Tok::kNumber;
      t.value = std::string(text_.substr(start, p_ - start));
      return t;
    }
    switch (c) {
      case '\'':
      case '`': {
        t.kind = c == '\'' ? Tok::kString : Tok::kDelimitedIdentifier;
        Result<std::string> s = Quoted(c);
        if (!s) return std::move(s).error();
        t.value = std::move(*s);
        return t;
      }
      case '@':
        return Temporal(t);
      case '%': {
        ++p_;
        t.kind = Tok::kConstant;
        if (p_ < text_.size() && IsIdentStart(text_[p_])) {
          size_t start = p_;
          while (p_ < text_.size() && IsIdentPart(text_[p_])) ++p_;
          t.value = std::string(text_.substr(start, p_ - start));
          return t;
        }
        if (p_ < text_.size() && (text_[p_] == '\'' || text_[p_] == '`' || text_[p_] == '"')) {
          Result<std::string> s = Quoted(text_[p_]);
          if (!s) return std::move(s).error();
          t.value = std::move(*s);
          return t;
        }
        return SyntaxError(text_, t.pos, "expected a name after '%'");
      }
      case '$': {
        ++p_;
        size_t start = p_;
        while (p_ < text_.size() && IsIdentPart(text_[p_])) ++p_;
        t.value = std::string(text_.substr(start, p_ - start));
        if (t.value != "this" && t.value != "index" && t.value != "total") {
          return SyntaxError(text_, t.pos, "unknown special variable '$" + t.value + "'");
        }
        t.kind = Tok::kSpecial;
        return t;
      }
      default:
        break;
    }
    ++p_;
    auto two = [this](char next) {
      if (p_ < text_.size() && text_[p_] == next) {
        ++p_;
        return true;
      }
      return false;
    };
    switch (c) {
      case '(':
        t.kind = Tok::kLParen;
        break;
      case ')':
        t.kind = Tok::kRParen;
        break;
      case '[':
        t.kind = Tok::kLBracket;
        break;
      case ']':
        t.kind = Tok::kRBracket;
        break;
      case '{':
        t.kind = Tok::kLBrace;
        break;
      case '}':
        t.kind = Tok::kRBrace;
        break;
      case '.':
        t.kind = Tok::kDot;
        break;
      case ',':
        t.kind = Tok::kComma;
        break;
      case '+':
        t.kind = Tok::kPlus;
        break;
      case '-':
        t.kind = Tok::kMinus;
        break;
      case '*':
        t.kind = Tok::kStar;
        break;
      case '/':
        t.kind = Tok::kSlash;
        break;
      case '&':
        t.kind = Tok::kAmp;
        break;
      case '|':
        t.kind = Tok::kPipe;
        break;
      case '=':
        t.kind = Tok::kEq;
        break;
      case '~':
        t.kind = Tok::kTilde;
        break;
      case '<':
        t.kind = two('=') ? Tok::kLe : Tok::kLt;
        break;
      case '>':
        t.kind = two('=') ? Tok::kGe : Tok::kGt;
        break;
      case '!':
        if (two('=')) {
          t.kind = Tok::kNe;
        } else if (two('~')) {
          t.kind = Tok::kNotTilde;
        } else {
          return SyntaxError(text_, t.pos, "expected '=' or '~' after '!'");
        }
        break;
      default:
        return SyntaxError(text_, t.pos, "unexpected character");
    }
    return t;
  }

  Status SkipSpaceAndComments() {
    while (p_ < text_.size()) {
      char c = text_[p_];
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        ++p_;
      } else if (c == '/' && p_ + 1 < text_.size() && text_[p_ + 1] == '/') {
        while (p_ < text_.size() && text_[p_] != '\n') ++p_;
      } else if (c == '/' && p_ + 1 < text_.size() && text_[p_ + 1] == '*') {
        size_t end = text_.find("*/", p_ + 2);
        if (end == std::string_view::npos) return SyntaxError(text_, p_, "unterminated comment");
        p_ = end + 2;
      } else {
        break;
      }
    }
    return Ok();
  }

  // A string or delimited identifier with its escapes; p_ at the opening quote.
  Result<std::string> Quoted(char quote) {
    size_t start = p_++;
    std::string out;
    while (p_ < text_.size() && text_[p_] != quote) {
      char c = text_[p_++];
      if (c != '\\') {
        out += c;
        continue;
      }
      if (p_ >= text_.size()) break;
      char e = text_[p_++];
      switch (e) {
        case '\'':
        case '"':
        case '`':
        case '\\':
        case '/':
          out += e;
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          uint32_t cp = 0;
          for (int i = 0; i < 4; ++i) {
            if (p_ >= text_.size()) return SyntaxError(text_, p_, "bad \\u escape");
            char h = text_[p_++];
            int v = IsDigit(h)               ? h - '0'
                    : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                    : (h >= 'A' && h <= 'F') ? h - 'A' + 10
                                             : -1;
            if (v < 0) return SyntaxError(text_, p_ - 1, "bad \\u escape");
            cp = cp * 16 + static_cast<uint32_t>(v);
          }
          AppendUtf8(cp, out);
          break;
        }
        default:
          return SyntaxError(text_, p_ - 2, "unknown escape sequence");
      }
    }
    if (p_ >= text_.size()) return SyntaxError(text_, start, "unterminated string");
    ++p_;
    return out;
  }

  // @2015-02-04T14:34:28.123+09:00, @2015T, @T14:34
  Result<Token> Temporal(Token t) {
    ++p_;
    size_t start = p_;
    auto digits = [this](size_t n) {
      size_t i = 0;
      while (i < n && p_ < text_.size() && IsDigit(text_[p_])) ++p_, ++i;
      return i == n;
    };
    auto time = [&]() {
      if (!digits(2)) return false;
      for (int part = 0; part < 2 && p_ < text_.size() && text_[p_] == ':'; ++part) {
        ++p_;
        if (!digits(2)) return false;
      }
      if (p_ + 1 < text_.size() && text_[p_] == '.' && IsDigit(text_[p_ + 1])) {
        ++p_;
        while (p_ < text_.size() && IsDigit(text_[p_])) ++p_;
      }
      return true;
    };
    t.kind = Tok::kTemporal;
    bool ok = true;
    if (p_ < text_.size() && text_[p_] == 'T') {
      ++p_;
      start = p_;
      ok = time();
      t.temporal_type = SysType::kTime;
    } else {
      t.temporal_type = SysType::kDate;
      ok = digits(4);
      for (int part = 0;
           ok && part < 2 && p_ + 1 < text_.size() && text_[p_] == '-' && IsDigit(text_[p_ + 1]);
           ++part) {
        ++p_;
        ok = digits(2);
      }
      if (ok && p_ < text_.size() && text_[p_] == 'T') {
        ++p_;
        t.temporal_type = SysType::kDateTime;
        if (p_ < text_.size() && IsDigit(text_[p_])) {
          ok = time();
          if (ok && p_ < text_.size() && text_[p_] == 'Z') {
            ++p_;
          } else if (ok && p_ + 5 < text_.size() && (text_[p_] == '+' || text_[p_] == '-') &&
                     IsDigit(text_[p_ + 1]) && IsDigit(text_[p_ + 2]) && text_[p_ + 3] == ':') {
            ++p_;
            ok = digits(2) && p_ < text_.size() && text_[p_++] == ':' && digits(2);
          }
        }
      }
    }
    t.value = std::string(text_.substr(start, p_ - start));
    if (!ok || !ParseTemporal(t.temporal_type, t.value)) {
      return SyntaxError(text_, t.pos, "invalid date/time literal");
    }
    return t;
  }

  std::string_view text_;
  size_t p_ = 0;
};

struct OpInfo {
  BinaryOp op;
  int precedence;
  NodeKind kind = NodeKind::kBinary;  // kIs / kAs: the right side is a type specifier
};

bool IsCalendarKeyword(std::string_view s) {
  static constexpr std::string_view kUnits[] = {
      "year", "years", "month",  "months",  "week",   "weeks",   "day",         "days",
      "hour", "hours", "minute", "minutes", "second", "seconds", "millisecond", "milliseconds"};
  return std::find(std::begin(kUnits), std::end(kUnits), s) != std::end(kUnits);
}

class Parser {
 public:
  Parser(std::string_view text, std::vector<Token> tokens)
      : text_(text), tokens_(std::move(tokens)) {
    program_.text = std::string(text);
  }

  Result<Program> Run() {
    int32_t root = ParseExpr(0);
    if (error_) return std::move(*error_);
    if (Peek().kind != Tok::kEnd) {
      return SyntaxError(text_, Peek().pos, "unexpected '" + TokenText(Peek()) + "'");
    }
    program_.root = root;
    return std::move(program_);
  }

 private:
  const Token& Peek(size_t ahead = 0) const {
    return tokens_[std::min(i_ + ahead, tokens_.size() - 1)];
  }
  const Token& Take() {
    const Token& t = tokens_[i_];
    if (i_ + 1 < tokens_.size()) ++i_;
    return t;
  }
  std::string TokenText(const Token& t) const {
    if (t.kind == Tok::kEnd) return "end of expression";
    size_t end = t.pos + 1;
    while (end < text_.size() && end - t.pos < 20 && text_[end] != ' ') ++end;
    return std::string(text_.substr(t.pos, end - t.pos));
  }

  int32_t Fail(uint32_t pos, std::string message) {
    if (!error_) error_ = SyntaxError(text_, pos, message);
    return -1;
  }
  int32_t FailWith(Error e) {
    if (!error_) error_ = std::move(e);
    return -1;
  }

  bool Expect(Tok kind, std::string_view what) {
    if (Peek().kind != kind) {
      Fail(Peek().pos, "expected " + std::string(what) + ", found '" + TokenText(Peek()) + "'");
      return false;
    }
    Take();
    return true;
  }

  // Adds a node; fails when the tree grows taller than kMaxDepth.
  int32_t Add(Node node, std::initializer_list<int32_t> children = {}) {
    int h = 0;
    for (int32_t c : children) {
      if (c >= 0) h = std::max(h, static_cast<int>(heights_[c]));
    }
    if (node.kind == NodeKind::kFunction) {
      for (uint32_t k = 0; k < node.arg_count; ++k) {
        h = std::max(h, static_cast<int>(heights_[program_.args[node.first_arg + k]]));
      }
    }
    if (h + 1 > kMaxDepth) return Fail(node.pos, "expression nested too deeply");
    program_.nodes.push_back(node);
    heights_.push_back(static_cast<uint16_t>(h + 1));
    return static_cast<int32_t>(program_.nodes.size() - 1);
  }

  std::optional<OpInfo> PeekBinary() const {
    const Token& t = Peek();
    switch (t.kind) {
      case Tok::kStar:
        return OpInfo{BinaryOp::kMul, 10};
      case Tok::kSlash:
        return OpInfo{BinaryOp::kDiv, 10};
      case Tok::kPlus:
        return OpInfo{BinaryOp::kAdd, 9};
      case Tok::kMinus:
        return OpInfo{BinaryOp::kSub, 9};
      case Tok::kAmp:
        return OpInfo{BinaryOp::kConcat, 9};
      case Tok::kPipe:
        return OpInfo{BinaryOp::kUnion, 7};
      case Tok::kLt:
        return OpInfo{BinaryOp::kLt, 6};
      case Tok::kGt:
        return OpInfo{BinaryOp::kGt, 6};
      case Tok::kLe:
        return OpInfo{BinaryOp::kLe, 6};
      case Tok::kGe:
        return OpInfo{BinaryOp::kGe, 6};
      case Tok::kEq:
        return OpInfo{BinaryOp::kEq, 5};
      case Tok::kNe:
        return OpInfo{BinaryOp::kNe, 5};
      case Tok::kTilde:
        return OpInfo{BinaryOp::kEquiv, 5};
      case Tok::kNotTilde:
        return OpInfo{BinaryOp::kNotEquiv, 5};
      case Tok::kIdentifier:
        break;
      default:
        return std::nullopt;
    }
    const std::string& w = t.value;
    if (w == "div") return OpInfo{BinaryOp::kIntDiv, 10};
    if (w == "mod") return OpInfo{BinaryOp::kMod, 10};
    if (w == "is") return OpInfo{BinaryOp::kEq, 8, NodeKind::kIs};
    if (w == "as") return OpInfo{BinaryOp::kEq, 8, NodeKind::kAs};
    if (w == "in") return OpInfo{BinaryOp::kIn, 4};
    if (w == "contains") return OpInfo{BinaryOp::kContains, 4};
    if (w == "and") return OpInfo{BinaryOp::kAnd, 3};
    if (w == "or") return OpInfo{BinaryOp::kOr, 2};
    if (w == "xor") return OpInfo{BinaryOp::kXor, 2};
    if (w == "implies") return OpInfo{BinaryOp::kImplies, 1};
    return std::nullopt;
  }

  // Precedence climbing over the binary operators; every operator is left-associative.
  int32_t ParseExpr(int min_precedence) {
    if (++depth_ > kMaxDepth) return Fail(Peek().pos, "expression nested too deeply");
    int32_t lhs = ParseUnary();
    while (lhs >= 0) {
      std::optional<OpInfo> op = PeekBinary();
      if (!op || op->precedence < min_precedence) break;
      uint32_t pos = Take().pos;
      if (op->kind != NodeKind::kBinary) {
        int32_t type = ParseTypeSpecifier();
        if (type < 0) return -1;
        Node n{op->kind};
        n.lhs = lhs;
        n.data = static_cast<uint32_t>(type);
        n.pos = pos;
        lhs = Add(n, {lhs});
        continue;
      }
      int32_t rhs = ParseExpr(op->precedence + 1);
      if (rhs < 0) return -1;
      Node n{NodeKind::kBinary};
      n.op = static_cast<uint8_t>(op->op);
      n.lhs = lhs;
      n.rhs = rhs;
      n.pos = pos;
      lhs = Add(n, {lhs, rhs});
    }
    --depth_;
    return lhs;
  }

  int32_t ParseUnary() {
    const Token& t = Peek();
    if (t.kind != Tok::kPlus && t.kind != Tok::kMinus) return ParsePostfix();
    bool minus = t.kind == Tok::kMinus;
    uint32_t pos = t.pos;
    Take();
    if (++depth_ > kMaxDepth) return Fail(pos, "expression nested too deeply");
    int32_t operand = ParseUnary();
    --depth_;
    if (operand < 0 || !minus) return operand;
    Node& o = program_.nodes[operand];
    if (o.kind == NodeKind::kLiteral) {
      Val& lit = program_.literals[o.data];
      if (lit.type == SysType::kInteger) {
        lit.i = -lit.i;
        return operand;
      }
      if (lit.type == SysType::kDecimal || lit.type == SysType::kQuantity) {
        lit.d = -lit.d;
        lit.text = lit.text[0] == '-' ? lit.text.substr(1) : "-" + lit.text;
        return operand;
      }
    }
    Node n{NodeKind::kNegate};
    n.lhs = operand;
    n.pos = pos;
    return Add(n, {operand});
  }

  int32_t ParsePostfix() {
    int32_t lhs = ParseTerm(-1);
    while (lhs >= 0) {
      if (Peek().kind == Tok::kDot) {
        Take();
        lhs = ParseInvocation(lhs);
      } else if (Peek().kind == Tok::kLBracket) {
        uint32_t pos = Take().pos;
        int32_t index = ParseExpr(0);
        if (index < 0 || !Expect(Tok::kRBracket, "']'")) return -1;
        Node n{NodeKind::kIndexer};
        n.lhs = lhs;
        n.rhs = index;
        n.pos = pos;
        lhs = Add(n, {lhs, index});
      } else {
        break;
      }
    }
    return lhs;
  }

  int32_t AddLiteral(Val v, uint32_t pos) {
    program_.literals.push_back(std::move(v));
    Node n{NodeKind::kLiteral};
    n.data = static_cast<uint32_t>(program_.literals.size() - 1);
    n.pos = pos;
    return Add(n);
  }

  int32_t AddName(std::string name) {
    program_.names.push_back(std::move(name));
    return static_cast<int32_t>(program_.names.size() - 1);
  }

  // identifier | function(args) | $this... after a '.' (source >= 0) or at the start of a term.
  int32_t ParseInvocation(int32_t source) {
    const Token& t = Peek();
    if (t.kind == Tok::kSpecial && source < 0) return ParseTerm(source);
    if (t.kind != Tok::kIdentifier && t.kind != Tok::kDelimitedIdentifier) {
      return Fail(t.pos, "expected a name, found '" + TokenText(t) + "'");
    }
    Token name = Take();
    if (name.kind == Tok::kIdentifier && Peek().kind == Tok::kLParen) {
      return ParseFunction(source, name);
    }
    Node n{NodeKind::kMember};
    n.lhs = source;
    n.data = static_cast<uint32_t>(AddName(name.value));
    n.pos = name.pos;
    return Add(n, {source});
  }

  int32_t ParseFunction(int32_t source, const Token& name) {
    Take();  // (
    const FunctionInfo* info = FindFunction(name.value);
    if (info == nullptr) {
      return FailWith(Error::NotSupported("FHIRPath: unsupported function '" + name.value +
                                          "()' at position " + std::to_string(name.pos)));
    }
    std::vector<int32_t> args;
    if (Peek().kind != Tok::kRParen) {
      while (true) {
        int32_t a = ParseExpr(0);
        if (a < 0) return -1;
        args.push_back(a);
        if (Peek().kind != Tok::kComma) break;
        Take();
      }
    }
    if (!Expect(Tok::kRParen, "')'")) return -1;
    if (args.size() < info->min_args || args.size() > info->max_args) {
      return Fail(name.pos, "wrong number of arguments to " + name.value + "()");
    }
    Node n{NodeKind::kFunction};
    n.op = static_cast<uint8_t>(info->function);
    n.lhs = source;
    n.pos = name.pos;
    n.arg_count = static_cast<uint8_t>(args.size());
    n.first_arg = static_cast<uint32_t>(program_.args.size());
    program_.args.insert(program_.args.end(), args.begin(), args.end());
    if (info->type_arg) {
      int32_t type = TypeFromExpression(args[0]);
      if (type < 0) return -1;
      n.data = static_cast<uint32_t>(type);
    }
    if ((info->function == Function::kMatches || info->function == Function::kReplaceMatches) &&
        program_.nodes[args[0]].kind == NodeKind::kLiteral &&
        program_.literals[program_.nodes[args[0]].data].type == SysType::kString) {
      const Node& arg = program_.nodes[args[0]];
      auto re = Regex::Compile(program_.literals[arg.data].text);
      if (!re) return Fail(arg.pos, re.error().message());
      program_.regexes.push_back(std::move(*re));
      n.data = static_cast<uint32_t>(program_.regexes.size());
    }
    return Add(n, {source});
  }

  int32_t ParseTerm(int32_t source) {
    const Token& t = Peek();
    uint32_t pos = t.pos;
    switch (t.kind) {
      case Tok::kIdentifier: {
        const std::string& w = t.value;
        if (w == "true" || w == "false") {
          Take();
          return AddLiteral(Val::Boolean(w == "true"), pos);
        }
        static constexpr std::string_view kReserved[] = {"and",     "or",  "xor",
                                                         "implies", "div", "mod"};
        if (std::find(std::begin(kReserved), std::end(kReserved), w) != std::end(kReserved)) {
          return Fail(pos, "unexpected '" + w + "'");
        }
        return ParseInvocation(source);
      }
      case Tok::kDelimitedIdentifier:
        return ParseInvocation(source);
      case Tok::kString: {
        Val v = Val::String(Take().value);
        return AddLiteral(std::move(v), pos);
      }
      case Tok::kNumber:
        return ParseNumber();
      case Tok::kTemporal: {
        const Token& lit = Take();
        return AddLiteral(Val::Temporal(lit.temporal_type, lit.value), pos);
      }
      case Tok::kConstant: {
        Node n{NodeKind::kVariable};
        n.data = static_cast<uint32_t>(AddName(Take().value));
        n.pos = pos;
        return Add(n);
      }
      case Tok::kSpecial: {
        std::string w = Take().value;
        Node n{w == "this" ? NodeKind::kThis : w == "index" ? NodeKind::kIndex : NodeKind::kTotal};
        n.pos = pos;
        return Add(n);
      }
      case Tok::kLParen: {
        Take();
        int32_t inner = ParseExpr(0);
        if (inner < 0 || !Expect(Tok::kRParen, "')'")) return -1;
        return inner;
      }
      case Tok::kLBrace: {
        Take();
        if (!Expect(Tok::kRBrace, "'}'")) return -1;
        Node n{NodeKind::kEmpty};
        n.pos = pos;
        return Add(n);
      }
      default:
        return Fail(pos, "unexpected '" + TokenText(t) + "'");
    }
  }

  int32_t ParseNumber() {
    Token t = Take();
    bool decimal = t.value.find('.') != std::string::npos;
    std::optional<double> d = ParseDecimal(t.value);
    if (!d) return Fail(t.pos, "number out of range");
    // A quantity: a number followed by a unit string or a calendar duration keyword.
    if (Peek().kind == Tok::kString ||
        (Peek().kind == Tok::kIdentifier && IsCalendarKeyword(Peek().value))) {
      std::string unit = Take().value;
      return AddLiteral(Val::Quantity(*d, t.value, std::move(unit)), t.pos);
    }
    if (decimal) return AddLiteral(Val::Decimal(*d, t.value), t.pos);
    std::optional<int64_t> i = ParseInteger(t.value);
    if (!i) return Fail(t.pos, "integer out of range");
    return AddLiteral(Val::Integer(*i), t.pos);
  }

  // identifier ('.' identifier)? after is / as: FHIR.X, System.X, or X.
  int32_t ParseTypeSpecifier() {
    const Token& t = Peek();
    if (t.kind != Tok::kIdentifier && t.kind != Tok::kDelimitedIdentifier) {
      return Fail(t.pos, "expected a type name, found '" + TokenText(t) + "'");
    }
    Token first = Take();
    std::string name = first.value;
    if ((name == "FHIR" || name == "System") && Peek().kind == Tok::kDot &&
        (Peek(1).kind == Tok::kIdentifier || Peek(1).kind == Tok::kDelimitedIdentifier)) {
      Take();
      name += "." + Take().value;
    }
    return AddType(name, first.pos);
  }

  // The type named by a function argument: X or FHIR.X / System.X parsed as a path.
  int32_t TypeFromExpression(int32_t arg) {
    const Node& n = program_.nodes[arg];
    if (n.kind == NodeKind::kMember && n.lhs < 0) return AddType(program_.names[n.data], n.pos);
    if (n.kind == NodeKind::kMember && program_.nodes[n.lhs].kind == NodeKind::kMember &&
        program_.nodes[n.lhs].lhs < 0) {
      return AddType(program_.names[program_.nodes[n.lhs].data] + "." + program_.names[n.data],
                     n.pos);
    }
    return Fail(n.pos, "expected a type name");
  }

  int32_t AddType(const std::string& name, uint32_t pos) {
    TypeSpec spec;
    spec.name = name;
    std::string_view bare = name;
    bool fhir_only = false, system_only = false;
    if (bare.substr(0, 5) == "FHIR.") {
      bare = bare.substr(5);
      fhir_only = true;
    } else if (bare.substr(0, 7) == "System.") {
      bare = bare.substr(7);
      system_only = true;
    }
    if (!system_only && bare.find('.') == std::string_view::npos) {
      spec.fhir = fhir::FindStructure(bare);
    }
    if (!fhir_only) {
      if (auto sys = SysTypeFromName(bare)) spec.system = *sys;
    }
    if (spec.fhir == nullptr && spec.system == SysType::kNode) {
      return Fail(pos, "unknown type '" + name + "'");
    }
    program_.types.push_back(std::move(spec));
    return static_cast<int32_t>(program_.types.size() - 1);
  }

  std::string_view text_;
  std::vector<Token> tokens_;
  size_t i_ = 0;
  int depth_ = 0;
  Program program_;
  std::vector<uint16_t> heights_;
  std::optional<Error> error_;
};

void Debug(const Program& p, int32_t i, std::string& out) {
  const Node& n = p.nodes[i];
  auto source = [&]() {
    if (n.lhs >= 0) {
      Debug(p, n.lhs, out);
      out += '.';
    }
  };
  switch (n.kind) {
    case NodeKind::kEmpty:
      out += "{}";
      return;
    case NodeKind::kLiteral: {
      const Val& v = p.literals[n.data];
      switch (v.type) {
        case SysType::kString:
          out += "'" + v.text + "'";
          break;
        case SysType::kBoolean:
          out += v.b ? "true" : "false";
          break;
        case SysType::kInteger:
          out += std::to_string(v.i);
          break;
        case SysType::kQuantity:
          out += v.text + " '" + v.unit + "'";
          break;
        case SysType::kDate:
        case SysType::kDateTime:
          out += "@" + v.text;
          break;
        case SysType::kTime:
          out += "@T" + v.text;
          break;
        default:
          out += v.text;
          break;
      }
      return;
    }
    case NodeKind::kMember:
      source();
      out += p.names[n.data];
      return;
    case NodeKind::kFunction: {
      source();
      out += GetFunctionInfo(static_cast<Function>(n.op)).name;
      out += '(';
      for (uint32_t k = 0; k < n.arg_count; ++k) {
        if (k > 0) out += ", ";
        Debug(p, p.args[n.first_arg + k], out);
      }
      out += ')';
      return;
    }
    case NodeKind::kThis:
      out += "$this";
      return;
    case NodeKind::kIndex:
      out += "$index";
      return;
    case NodeKind::kTotal:
      out += "$total";
      return;
    case NodeKind::kVariable:
      out += "%" + p.names[n.data];
      return;
    case NodeKind::kIndexer:
      out += "([] ";
      Debug(p, n.lhs, out);
      out += ' ';
      Debug(p, n.rhs, out);
      out += ')';
      return;
    case NodeKind::kNegate:
      out += "(- ";
      Debug(p, n.lhs, out);
      out += ')';
      return;
    case NodeKind::kIs:
    case NodeKind::kAs:
      out += n.kind == NodeKind::kIs ? "(is " : "(as ";
      Debug(p, n.lhs, out);
      out += ' ' + p.types[n.data].name + ')';
      return;
    case NodeKind::kBinary: {
      static constexpr std::string_view kOps[] = {
          "*",  "/", "div", "mod", "+",  "-",  "&",        "|",   "<",  ">",   "<=",
          ">=", "=", "!=",  "~",   "!~", "in", "contains", "and", "or", "xor", "implies"};
      out += '(';
      out += kOps[n.op];
      out += ' ';
      Debug(p, n.lhs, out);
      out += ' ';
      Debug(p, n.rhs, out);
      out += ')';
      return;
    }
  }
}

}  // namespace

const FunctionInfo* FindFunction(std::string_view name) {
  for (const FunctionInfo& f : kFunctions) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

const FunctionInfo& GetFunctionInfo(Function f) {
  for (const FunctionInfo& info : kFunctions) {
    if (info.function == f) return info;
  }
  return kFunctions[0];
}

Result<Program> Parse(std::string_view text) {
  if (text.size() > kMaxTextLength) {
    return Error::Invalid("FHIRPath: expression longer than " + std::to_string(kMaxTextLength) +
                          " characters");
  }
  Result<std::vector<Token>> tokens = Lexer(text).Run();
  if (!tokens) return std::move(tokens).error();
  return Parser(text, std::move(*tokens)).Run();
}

std::string DebugString(const Program& program) {
  std::string out;
  if (program.root >= 0) Debug(program, program.root, out);
  return out;
}

}  // namespace fhirstone::fhirpath::internal
