#include "db/postgres/postgres_database.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <optional>
#include <span>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "common/strings.h"

namespace fhirstone::db::postgres {
namespace {

constexpr unsigned kByteaOid = 17;
constexpr unsigned kBoolOid = 16;
// The key of the advisory lock that write transactions hold (any constant: "fhirstone").
constexpr const char* kWriteLock = "SELECT pg_advisory_xact_lock(7022907133394089845)";

// The class of an SQLSTATE: constraint violations are conflicts; serialization failures,
// deadlocks and lost connections are worth a retry.
Error PgError(std::string_view what, const PGresult* result, PGconn* conn) {
  const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  std::string message = result ? PQresultErrorMessage(result) : PQerrorMessage(conn);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  std::string text = std::string(what) + ": " + message;
  std::string_view code = state ? state : "";
  if (code.starts_with("23")) return Error::Conflict(text);
  if (code == "40001" || code == "40P01" || code.starts_with("08") || code == "57P01" ||
      PQstatus(conn) != CONNECTION_OK)
    return Error::Unavailable(text);
  return Error::Internal(text);
}

bool IsWordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// The highest $n of rendered SQL: how many parameters it takes.
int HighestParameter(std::string_view text) {
  int params = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '$' || i + 1 >= text.size() || !std::isdigit(text[i + 1])) continue;
    int n = 0;
    std::from_chars(text.data() + i + 1, text.data() + text.size(), n);
    params = std::max(params, n);
  }
  return params;
}

class PostgresConnection;
// Sends the rows queued for the tables `sql` names (or all, before a savepoint or release), or
// drops them all before a rollback. Defined after PostgresConnection.
Status BeforeStatement(PostgresConnection& conn, std::string_view sql);
// Counts the transactions begun, committed or rolled back on `conn`: a cursor declared in an
// earlier one is gone.
int64_t TransactionGeneration(const PostgresConnection& conn);

class PostgresStatement : public Statement {
 public:
  // `name` is the prepared statement's, or (with `cursor_text`, the rendered SQL) the cursor's
  // that reads the result in batches.
  PostgresStatement(PostgresConnection& owner, PGconn* conn, std::string name, std::string sql,
                    int params, std::string cursor_text = {})
      : owner_(owner),
        sql_(std::move(sql)),
        cursor_text_(std::move(cursor_text)),
        conn_(conn),
        name_(std::move(name)),
        values_(params),
        nulls_(params, true),
        formats_(params, 0) {}
  ~PostgresStatement() override { Clear(); }

  void BindInt(int index, int64_t value) override { Set(index, std::to_string(value), 0); }
  void BindDouble(int index, double value) override {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
    Set(index, std::string(buf, end), 0);
  }
  // PostgreSQL text holds valid UTF-8 without NUL: other bytes become U+FFFD (such a value can
  // match nothing stored, and FHIR data is valid UTF-8 already).
  void BindText(int index, std::string_view value) override {
    std::string text(value);
    MakeValidUtf8(text);
    Set(index, std::move(text), 0);
  }
  void BindBlob(int index, std::string_view value) override { Set(index, std::string(value), 1); }
  void BindNull(int index) override {
    if (index >= 1 && index <= static_cast<int>(nulls_.size())) nulls_[index - 1] = true;
  }

  Result<bool> Step() override {
    if (!cursor_text_.empty()) return StepCursor();
    if (!result_) {
      FHIRSTONE_RETURN_IF_ERROR(BeforeStatement(owner_, sql_));
      auto [values, lengths] = Parameters();
      result_ = PQexecPrepared(conn_, name_.c_str(), static_cast<int>(values.size()), values.data(),
                               lengths.data(), formats_.data(), 0);
      ExecStatusType status = PQresultStatus(result_);
      if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
        Error e = PgError("PostgreSQL statement failed", result_, conn_);
        Clear();
        return e;
      }
      rows_ = PQntuples(result_);
      row_ = -1;
    }
    if (row_ + 1 >= rows_) return false;
    ++row_;
    decoded_.assign(PQnfields(result_), std::nullopt);
    return true;
  }

  int64_t ColumnInt(int column) override {
    const char* v = PQgetvalue(result_, row_, column);
    if (PQftype(result_, column) == kBoolOid) return v[0] == 't' ? 1 : 0;
    return std::strtoll(v, nullptr, 10);
  }
  double ColumnDouble(int column) override {
    return std::strtod(PQgetvalue(result_, row_, column), nullptr);
  }
  std::string_view ColumnText(int column) override {
    if (PQgetisnull(result_, row_, column)) return {};
    if (PQftype(result_, column) != kByteaOid)
      return std::string_view(PQgetvalue(result_, row_, column),
                              PQgetlength(result_, row_, column));
    auto& slot = decoded_[column];
    if (!slot) {
      size_t n = 0;
      unsigned char* raw = PQunescapeBytea(
          reinterpret_cast<const unsigned char*>(PQgetvalue(result_, row_, column)), &n);
      slot.emplace(reinterpret_cast<const char*>(raw), n);
      PQfreemem(raw);
    }
    return *slot;
  }
  bool ColumnIsNull(int column) override { return PQgetisnull(result_, row_, column) != 0; }
  void Reset() override {
    Clear();
    if (open_) {  // a cursor closes with its transaction anyway; a failed CLOSE changes nothing
      std::string close = "CLOSE " + name_;
      PQclear(PQexec(conn_, close.c_str()));
      open_ = false;
    }
    done_ = false;
    std::fill(nulls_.begin(), nulls_.end(), true);
  }

 protected:
  int64_t Changes() override {
    const char* n = result_ ? PQcmdTuples(result_) : "";
    return *n ? std::strtoll(n, nullptr, 10) : 0;
  }

 private:
  void Set(int index, std::string value, int format) {
    if (index < 1 || index > static_cast<int>(values_.size())) return;
    values_[index - 1] = std::move(value);
    nulls_[index - 1] = false;
    formats_[index - 1] = format;
  }
  void Clear() {
    if (result_) PQclear(result_);
    result_ = nullptr;
    rows_ = 0;
    row_ = -1;
  }

  // The cursor's next row: FETCH a batch when the last one is used up.
  // The bound values as libpq takes them (nullptr for NULL) and their lengths.
  std::pair<std::vector<const char*>, std::vector<int>> Parameters() const {
    std::vector<const char*> values(values_.size());
    std::vector<int> lengths(values_.size());
    for (size_t i = 0; i < values_.size(); ++i) {
      values[i] = nulls_[i] ? nullptr : values_[i].data();
      lengths[i] = static_cast<int>(values_[i].size());
    }
    return {std::move(values), std::move(lengths)};
  }

  Result<bool> StepCursor() {
    constexpr int kBatch = 1000;
    if ((open_ || done_) && generation_ != TransactionGeneration(owner_)) {
      // Left half read in a transaction that has ended (its cursor went with it): start over.
      Clear();
      open_ = done_ = false;
    }
    if (!open_ && !done_) {
      FHIRSTONE_RETURN_IF_ERROR(BeforeStatement(owner_, sql_));
      auto [values, lengths] = Parameters();
      std::string declare = "DECLARE " + name_ + " NO SCROLL CURSOR FOR " + cursor_text_;
      PGresult* declared = PQexecParams(conn_, declare.c_str(), static_cast<int>(values.size()),
                                        nullptr, values.data(), lengths.data(), formats_.data(), 0);
      if (PQresultStatus(declared) != PGRES_COMMAND_OK) {
        Error e = PgError("PostgreSQL cursor failed", declared, conn_);
        PQclear(declared);
        return e;
      }
      PQclear(declared);
      open_ = true;
      generation_ = TransactionGeneration(owner_);
    }
    if (row_ + 1 < rows_) {
      ++row_;
      decoded_.assign(PQnfields(result_), std::nullopt);
      return true;
    }
    if (done_) return false;
    Clear();
    std::string fetch = "FETCH FORWARD " + std::to_string(kBatch) + " FROM " + name_;
    result_ = PQexec(conn_, fetch.c_str());
    if (PQresultStatus(result_) != PGRES_TUPLES_OK) {
      Error e = PgError("PostgreSQL fetch failed", result_, conn_);
      Clear();
      return e;
    }
    rows_ = PQntuples(result_);
    if (rows_ < kBatch) {  // the last batch: the cursor is done with
      std::string close = "CLOSE " + name_;
      PQclear(PQexec(conn_, close.c_str()));
      open_ = false;
      done_ = true;
    }
    if (rows_ == 0) return false;
    row_ = 0;
    decoded_.assign(PQnfields(result_), std::nullopt);
    return true;
  }

  PostgresConnection& owner_;
  std::string sql_;          // as the store wrote it
  std::string cursor_text_;  // rendered, for a cursor; empty for a prepared statement
  bool open_ = false;        // the cursor is declared
  int64_t generation_ = 0;   // in this transaction of the connection
  bool done_ = false;        // the cursor's last batch was fetched
  PGconn* conn_;
  std::string name_;
  std::vector<std::string> values_;
  std::vector<bool> nulls_;
  std::vector<int> formats_;
  PGresult* result_ = nullptr;
  int rows_ = 0;
  int row_ = -1;
  std::vector<std::optional<std::string>> decoded_;  // bytea columns of the current row
};

class PostgresConnection : public Connection {
 public:
  explicit PostgresConnection(PGconn* conn) : conn_(conn) {}
  ~PostgresConnection() override {
    cache_.clear();
    PQfinish(conn_);
  }

  Dialect dialect() const override { return Dialect::kPostgres; }

  Status Execute(std::string_view sql) override {
    FHIRSTONE_RETURN_IF_ERROR(BeforeStatement(*this, sql));
    std::string text = RenderSql(sql);
    PGresult* result = PQexec(conn_, text.c_str());
    ExecStatusType status = PQresultStatus(result);
    Status out = Ok();
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK && status != PGRES_EMPTY_QUERY)
      out = PgError("PostgreSQL exec failed", result, conn_);
    PQclear(result);
    return out;
  }

  Result<Statement*> Prepare(std::string_view sql) override {
    auto it = cache_.find(sql);
    if (it != cache_.end()) return it->second.get();
    std::string text = RenderSql(sql);
    int params = HighestParameter(text);
    std::string name = "s" + std::to_string(++statements_);
    PGresult* result = PQprepare(conn_, name.c_str(), text.c_str(), 0, nullptr);
    if (PQresultStatus(result) != PGRES_COMMAND_OK) {
      Error e = PgError("PostgreSQL prepare failed", result, conn_);
      PQclear(result);
      return e;
    }
    PQclear(result);
    auto& slot = cache_[std::string(sql)];
    slot = std::make_unique<PostgresStatement>(*this, conn_, std::move(name), std::string(sql),
                                               params);
    return slot.get();
  }

  Result<Statement*> PrepareScan(std::string_view sql) override {
    std::string key = "scan:" + std::string(sql);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second.get();
    std::string text = RenderSql(sql);
    int params = HighestParameter(text);
    auto& slot = cache_[key];
    slot = std::make_unique<PostgresStatement>(*this, conn_, "c" + std::to_string(++statements_),
                                               std::string(sql), params, std::move(text));
    return slot.get();
  }

  int64_t generation() const { return generation_; }

  Status Begin(bool write) override {
    ++generation_;
    if (!write) return Execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    FHIRSTONE_RETURN_IF_ERROR(Execute("BEGIN"));
    if (auto locked = Execute(kWriteLock); !locked) {
      (void)Execute("ROLLBACK");
      return locked;
    }
    return Ok();
  }
  // PostgreSQL answers COMMIT in a failed transaction with success and a ROLLBACK tag.
  Status Commit() override {
    ++generation_;
    FHIRSTONE_RETURN_IF_ERROR(Flush());
    PGresult* result = PQexec(conn_, "COMMIT");
    Status out = Ok();
    if (PQresultStatus(result) != PGRES_COMMAND_OK) {
      out = PgError("PostgreSQL commit failed", result, conn_);
    } else if (std::string_view(PQcmdStatus(result)) != "COMMIT") {
      out =
          Error::Unavailable("PostgreSQL rolled the transaction back: an earlier statement failed");
    }
    PQclear(result);
    return out;
  }
  Status Rollback() override {
    ++generation_;
    return Execute("ROLLBACK");
  }
  bool Reusable() override {
    return PQstatus(conn_) == CONNECTION_OK && PQtransactionStatus(conn_) == PQTRANS_IDLE;
  }

  bool QueueRow(std::string_view table, std::string_view columns, std::span<const Value> values,
                bool /*keyed: COPY keeps the rows as they come*/) override {
    // Outside a transaction nothing would send them before the connection goes back to the pool.
    if (PQtransactionStatus(conn_) == PQTRANS_IDLE) return false;
    Queued* q = nullptr;
    for (auto& candidate : queued_)
      if (candidate.table == table && candidate.columns == columns) q = &candidate;
    if (!q) q = &queued_.emplace_back(Queued{std::string(table), std::string(columns), {}});
    std::string& out = q->data;
    for (size_t i = 0; i < values.size(); ++i) {
      if (i) out += '\t';
      if (const auto* n = std::get_if<int64_t>(&values[i])) {
        out += std::to_string(*n);
      } else if (const auto* d = std::get_if<double>(&values[i])) {
        char buf[32];
        auto [end, ec] = std::to_chars(buf, buf + sizeof buf, *d);
        out.append(buf, end);
      } else {  // COPY's text format: backslash escapes for the separators
        std::string text(std::get<std::string_view>(values[i]));
        MakeValidUtf8(text);
        for (char c : text) {
          switch (c) {
            case '\\':
              out += "\\\\";
              break;
            case '\t':
              out += "\\t";
              break;
            case '\n':
              out += "\\n";
              break;
            case '\r':
              out += "\\r";
              break;
            default:
              out += c;
          }
        }
      }
    }
    out += '\n';
    return true;
  }

  Status SendQueued(std::string_view table) override {
    for (auto& q : queued_)
      if (q.table == table) FHIRSTONE_RETURN_IF_ERROR(Send(q));
    return Ok();
  }

  // Sends the queued rows of every table (all: nullopt) or of the tables `sql` names.
  Status Flush(std::optional<std::string_view> sql = std::nullopt) {
    for (auto& q : queued_)
      if (!sql || sql->find(q.table) != std::string_view::npos) FHIRSTONE_RETURN_IF_ERROR(Send(q));
    return Ok();
  }
  void Drop() {
    for (auto& q : queued_) q.data.clear();
  }
  bool HasQueued() const {
    for (const auto& q : queued_)
      if (!q.data.empty()) return true;
    return false;
  }

 private:
  Status Copy(const std::string& table, const std::string& columns, const std::string& data) {
    std::string sql = "COPY " + table + " (" + columns + ") FROM STDIN";
    PGresult* start = PQexec(conn_, sql.c_str());
    if (PQresultStatus(start) != PGRES_COPY_IN) {
      Error e = PgError("PostgreSQL COPY failed", start, conn_);
      PQclear(start);
      return e;
    }
    PQclear(start);
    bool sent = true;
    constexpr size_t kChunk = 1 << 20;  // PQputCopyData takes an int length
    for (size_t at = 0; sent && at < data.size(); at += kChunk) {
      size_t n = std::min(kChunk, data.size() - at);
      sent = PQputCopyData(conn_, data.data() + at, static_cast<int>(n)) == 1;
    }
    bool ended = PQputCopyEnd(conn_, sent ? nullptr : "the rows could not be sent") == 1;
    Status out = Ok();
    while (PGresult* result = PQgetResult(conn_)) {
      if (PQresultStatus(result) != PGRES_COMMAND_OK && out)
        out = PgError("PostgreSQL COPY failed", result, conn_);
      PQclear(result);
    }
    if (out && (!sent || !ended)) out = PgError("PostgreSQL COPY failed", nullptr, conn_);
    return out;
  }

  struct Queued {
    std::string table, columns, data;
  };
  // Sends `q`'s rows, if any, by one COPY.
  Status Send(Queued& q) {
    if (q.data.empty()) return Ok();
    std::string data = std::move(q.data);
    q.data.clear();
    return Copy(q.table, q.columns, data);
  }
  std::vector<Queued> queued_;
  int64_t generation_ = 0;
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  PGconn* conn_;
  int statements_ = 0;
  std::unordered_map<std::string, std::unique_ptr<PostgresStatement>, Hash, std::equal_to<>> cache_;
};

int64_t TransactionGeneration(const PostgresConnection& conn) { return conn.generation(); }

Status BeforeStatement(PostgresConnection& conn, std::string_view sql) {
  if (!conn.HasQueued()) return Ok();
  std::string_view head = sql.substr(0, 16);
  if (head.starts_with("ROLLBACK")) {  // ROLLBACK, ROLLBACK TO: the rows go with it
    conn.Drop();
    return Ok();
  }
  if (head.starts_with("SAVEPOINT") || head.starts_with("RELEASE")) return conn.Flush();
  return conn.Flush(sql);
}

class PostgresDatabase : public Database {
 public:
  explicit PostgresDatabase(std::string url) : url_(std::move(url)) {}
  Dialect dialect() const override { return Dialect::kPostgres; }

 protected:
  Result<std::unique_ptr<Connection>> OpenConnection() override {
    PGconn* conn = PQconnectdb(url_.c_str());
    if (PQstatus(conn) != CONNECTION_OK) {
      std::string message = PQerrorMessage(conn);
      while (!message.empty() && message.back() == '\n') message.pop_back();
      PQfinish(conn);
      return Error::Unavailable("Cannot connect to PostgreSQL: " + message);
    }
    // Quiet notices (e.g. "relation already exists, skipping") instead of printing them.
    PQsetNoticeProcessor(
        conn, [](void*, const char*) {}, nullptr);
    return std::unique_ptr<Connection>(new PostgresConnection(conn));
  }

 private:
  std::string url_;
};

}  // namespace

std::string RenderSql(std::string_view sql) {
  std::string out;
  out.reserve(sql.size() + 16);
  int param = 0;
  char quote = 0;
  for (size_t i = 0; i < sql.size(); ++i) {
    char c = sql[i];
    if (quote) {
      out += c;
      if (c == quote) quote = 0;
      continue;
    }
    if (c == '\'' || c == '"') {
      quote = c;
      out += c;
      continue;
    }
    if (c == '?') {
      out += '$';
      out += std::to_string(++param);
      continue;
    }
    // SQLite's unary plus on a column (which keeps its index out of the plan) is not defined on
    // text in PostgreSQL: dropped.
    if (c == '+' && i + 1 < sql.size() && std::isalpha(static_cast<unsigned char>(sql[i + 1])) &&
        (i == 0 || sql[i - 1] == ' ' || sql[i - 1] == '(' || sql[i - 1] == ','))
      continue;
    bool word_start = i == 0 || !IsWordChar(sql[i - 1]);
    auto word = [&](std::string_view w) {
      return word_start && sql.substr(i, w.size()) == w &&
             (i + w.size() == sql.size() || !IsWordChar(sql[i + w.size()]));
    };
    if (word("INTEGER PRIMARY KEY")) {
      out += "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY";
      i += std::string_view("INTEGER PRIMARY KEY").size() - 1;
    } else if (word("INTEGER")) {
      out += "BIGINT";
      i += 6;
    } else if (word("REAL")) {  // SQLite's REAL is an 8-byte float; PostgreSQL's real 4 bytes
      out += "DOUBLE PRECISION";
      i += 3;
    } else if (word("BLOB")) {
      out += "BYTEA";
      i += 3;
    } else if (word("TEXT")) {      // compared in code point order, as SQLite does, whatever the
      out += "TEXT COLLATE \"C\"";  // database's default collation (prefix bounds rely on it)
      i += 3;
    } else {
      out += c;
    }
  }
  return out;
}

Result<std::unique_ptr<Database>> OpenPostgresDatabase(std::string_view url) {
  auto db = std::make_unique<PostgresDatabase>(std::string(url));
  FHIRSTONE_RETURN_IF_ERROR(db->Ping());  // a clear error now rather than at the first request
  return std::unique_ptr<Database>(std::move(db));
}

}  // namespace fhirstone::db::postgres
