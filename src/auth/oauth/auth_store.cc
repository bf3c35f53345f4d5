#include "auth/oauth/auth_store.h"

#include <functional>
#include <optional>
#include <variant>

#include "common/strings.h"
#include "db/database.h"

namespace fhirstone::oauth {
namespace {

using Bind = std::variant<int64_t, std::string>;
using Row = std::vector<std::string>;

std::vector<db::Migration> Migrations() {
  return {{2001, "authorization server", R"sql(
CREATE TABLE auth_client (
  client_id TEXT PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL, secret_hash TEXT NOT NULL,
  redirect_uris TEXT NOT NULL, allowed_scopes TEXT NOT NULL, jwks TEXT NOT NULL,
  jwks_uri TEXT NOT NULL, launch_uri TEXT NOT NULL, require_pkce INTEGER NOT NULL);
CREATE TABLE auth_user (
  user_id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,
  fhir_user TEXT NOT NULL, display TEXT NOT NULL);
CREATE TABLE auth_key (
  kid TEXT PRIMARY KEY, private_jwk TEXT NOT NULL, created INTEGER NOT NULL,
  retired INTEGER NOT NULL);
CREATE TABLE auth_session (
  id_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, csrf TEXT NOT NULL, expires INTEGER NOT NULL);
CREATE TABLE auth_request (
  id TEXT PRIMARY KEY, session_hash TEXT NOT NULL, state TEXT NOT NULL, expires INTEGER NOT NULL);
CREATE TABLE auth_single_use (
  hash TEXT PRIMARY KEY, kind TEXT NOT NULL, payload TEXT NOT NULL, grant_id TEXT NOT NULL,
  client_id TEXT NOT NULL, user_id TEXT NOT NULL, expires INTEGER NOT NULL,
  used INTEGER NOT NULL);
CREATE INDEX auth_single_use_client ON auth_single_use (client_id, user_id);
CREATE TABLE auth_revoked (id TEXT PRIMARY KEY, expires INTEGER NOT NULL);
CREATE TABLE auth_consent (
  user_id TEXT NOT NULL, client_id TEXT NOT NULL, scope TEXT NOT NULL,
  granted_at INTEGER NOT NULL, consent_resource_id TEXT NOT NULL,
  PRIMARY KEY (user_id, client_id));
CREATE TABLE auth_jti (
  client_id TEXT NOT NULL, jti TEXT NOT NULL, expires INTEGER NOT NULL,
  PRIMARY KEY (client_id, jti));
)sql"}};
}

// Runs `run` on the statement `sql` with `binds`, on a leased connection; `write` wraps it in a
// write transaction of its own, so that writers queue on the database's in-process write lock
// instead of colliding in SQLite's busy handler.
Status Prepared(db::Database& database, std::string_view sql, const std::vector<Bind>& binds,
                bool write, const std::function<Status(db::Statement&)>& run) {
  auto lease = database.Acquire();
  if (!lease) return std::move(lease).error();
  std::optional<db::Transaction> tx;
  if (write) {
    auto begun = db::Transaction::Begin(**lease, /*write=*/true);
    if (!begun) return std::move(begun).error();
    tx.emplace(std::move(begun).value());
  }
  auto stmt = (*lease)->Prepare(sql);
  if (!stmt) return std::move(stmt).error();
  db::Statement& s = **stmt;
  for (size_t i = 0; i < binds.size(); ++i) {
    int index = static_cast<int>(i) + 1;
    if (const auto* n = std::get_if<int64_t>(&binds[i])) {
      s.BindInt(index, *n);
    } else {
      s.BindText(index, std::get<std::string>(binds[i]));
    }
  }
  Status status = run(s);
  s.Reset();
  if (!status || !tx) return status;
  return tx->Commit();
}

// A write: the rows it changed.
Result<int64_t> Exec(db::Database& database, std::string_view sql, const std::vector<Bind>& binds) {
  int64_t changes = 0;
  FHIRSTONE_RETURN_IF_ERROR(
      Prepared(database, sql, binds, /*write=*/true, [&](db::Statement& s) -> Status {
        auto n = s.Run();
        if (!n) return std::move(n).error();
        changes = *n;
        return Ok();
      }));
  return changes;
}

Result<std::vector<Row>> Query(db::Database& database, std::string_view sql,
                               const std::vector<Bind>& binds, int columns) {
  std::vector<Row> rows;
  Status status = Prepared(database, sql, binds, /*write=*/false, [&](db::Statement& s) -> Status {
    while (true) {
      auto more = s.Step();
      if (!more) return std::move(more).error();
      if (!*more) return Ok();
      Row row;
      for (int c = 0; c < columns; ++c) row.emplace_back(s.ColumnText(c));
      rows.push_back(std::move(row));
    }
  });
  if (!status) return std::move(status).error();
  return rows;
}

Result<std::optional<Row>> QueryOne(db::Database& database, std::string_view sql,
                                    const std::vector<Bind>& binds, int columns) {
  auto rows = Query(database, sql, binds, columns);
  if (!rows) return std::move(rows).error();
  if (rows->empty()) return std::optional<Row>();
  return std::optional<Row>(std::move(rows->front()));
}

int64_t ToInt(const std::string& s) { return ParseInt64(s).value_or(0); }

std::string JoinLines(const std::vector<std::string>& v) {
  json::Value array = json::Value::EmptyArray();
  for (const auto& s : v) array.PushBack(s);
  return json::Write(array);
}

std::vector<std::string> SplitLines(const std::string& s) {
  std::vector<std::string> out;
  auto parsed = json::Parse(s);
  if (parsed && parsed->is_array())
    for (const auto& v : parsed->as_array())
      if (v.is_string()) out.push_back(v.as_string());
  return out;
}

constexpr char kClientColumns[] =
    "client_id, name, type, secret_hash, redirect_uris, allowed_scopes, jwks, jwks_uri, "
    "launch_uri, require_pkce";

Client ClientFromRow(const Row& r) {
  Client c;
  c.client_id = r[0];
  c.name = r[1];
  c.type = ParseClientType(r[2]).value_or(ClientType::kPublic);
  c.secret_hash = r[3];
  c.redirect_uris = SplitLines(r[4]);
  c.allowed_scopes = r[5];
  c.jwks = r[6];
  c.jwks_uri = r[7];
  c.launch_uri = r[8];
  c.require_pkce = r[9] == "1";
  return c;
}

User UserFromRow(const Row& r) { return User{r[0], r[1], r[2], r[3], r[4]}; }

Result<std::optional<Consumed>> Consume(db::Database& database, std::string_view kind,
                                        std::string_view hash) {
  auto row = QueryOne(database,
                      "SELECT payload, grant_id, expires, used FROM auth_single_use WHERE hash = ? "
                      "AND kind = ?",
                      {std::string(hash), std::string(kind)}, 4);
  if (!row) return std::move(row).error();
  if (!*row) return std::optional<Consumed>();
  Consumed c{(**row)[0], (**row)[1], ToInt((**row)[2]), false};
  auto changed = Exec(database, "UPDATE auth_single_use SET used = 1 WHERE hash = ? AND used = 0",
                      {std::string(hash)});
  if (!changed) return std::move(changed).error();
  c.first_use = *changed == 1;  // only one concurrent consumer wins
  return std::optional<Consumed>(std::move(c));
}

Status PutSingleUse(db::Database& database, std::string_view kind, std::string_view hash,
                    const std::string& payload, const std::string& grant_id,
                    const std::string& client_id, const std::string& user_id, int64_t expires) {
  auto r =
      Exec(database,
           "INSERT INTO auth_single_use (hash, kind, payload, grant_id, client_id, user_id, "
           "expires, used) VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
           {std::string(hash), std::string(kind), payload, grant_id, client_id, user_id, expires});
  if (!r) return std::move(r).error();
  return Ok();
}

Status Done(Result<int64_t> r) {
  if (!r) return std::move(r).error();
  return Ok();
}

}  // namespace

std::string_view ClientTypeName(ClientType type) {
  switch (type) {
    case ClientType::kPublic:
      return "public";
    case ClientType::kConfidentialSymmetric:
      return "confidential-symmetric";
    case ClientType::kConfidentialAsymmetric:
      return "confidential-asymmetric";
  }
  return "public";
}

std::optional<ClientType> ParseClientType(std::string_view name) {
  if (name == "public") return ClientType::kPublic;
  if (name == "confidential-symmetric") return ClientType::kConfidentialSymmetric;
  if (name == "confidential-asymmetric") return ClientType::kConfidentialAsymmetric;
  return std::nullopt;
}

json::Value Grant::ToJson() const {
  json::Value v = json::Value::EmptyObject();
  v.Set("grant_id", grant_id);
  v.Set("client_id", client_id);
  v.Set("user_id", user_id);
  v.Set("fhir_user", fhir_user);
  v.Set("scope", scope);
  v.Set("patient", patient);
  v.Set("encounter", encounter);
  v.Set("fhir_context", fhir_context);
  v.Set("need_patient_banner", need_patient_banner);
  v.Set("smart_style_url", smart_style_url);
  v.Set("intent", intent);
  v.Set("redirect_uri", redirect_uri);
  v.Set("code_challenge", code_challenge);
  v.Set("nonce", nonce);
  v.Set("auth_time", json::Value::Number(auth_time));
  if (access_seconds) v.Set("access_seconds", json::Value::Number(access_seconds));
  return v;
}

Grant Grant::FromJson(const json::Value& v) {
  Grant g;
  g.grant_id = v.GetString("grant_id");
  g.client_id = v.GetString("client_id");
  g.user_id = v.GetString("user_id");
  g.fhir_user = v.GetString("fhir_user");
  g.scope = v.GetString("scope");
  g.patient = v.GetString("patient");
  g.encounter = v.GetString("encounter");
  if (const json::Value* c = v.Find("fhir_context")) g.fhir_context = *c;
  if (const json::Value* b = v.Find("need_patient_banner"); b && b->is_bool())
    g.need_patient_banner = b->as_bool();
  g.smart_style_url = v.GetString("smart_style_url");
  g.intent = v.GetString("intent");
  g.redirect_uri = v.GetString("redirect_uri");
  g.code_challenge = v.GetString("code_challenge");
  g.nonce = v.GetString("nonce");
  if (const json::Value* t = v.Find("auth_time"); t && t->is_number())
    g.auth_time = ParseInt64(t->as_string()).value_or(0);
  if (const json::Value* t = v.Find("access_seconds"); t && t->is_number())
    g.access_seconds = ParseInt64(t->as_string()).value_or(0);
  return g;
}

Result<std::unique_ptr<AuthStore>> AuthStore::Open(db::Database& db) {
  FHIRSTONE_RETURN_IF_ERROR(db.Migrate(Migrations()));
  return std::unique_ptr<AuthStore>(new AuthStore(db));
}

Status AuthStore::AddClient(const Client& c) {
  return Done(Exec(db_,
                   std::string("INSERT INTO auth_client (") + kClientColumns +
                       ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   {c.client_id, c.name, std::string(ClientTypeName(c.type)), c.secret_hash,
                    JoinLines(c.redirect_uris), c.allowed_scopes, c.jwks, c.jwks_uri, c.launch_uri,
                    int64_t{c.require_pkce ? 1 : 0}}));
}

Result<std::optional<Client>> AuthStore::FindClient(std::string_view client_id) {
  auto row = QueryOne(
      db_, std::string("SELECT ") + kClientColumns + " FROM auth_client WHERE client_id = ?",
      {std::string(client_id)}, 10);
  if (!row) return std::move(row).error();
  if (!*row) return std::optional<Client>();
  return std::optional<Client>(ClientFromRow(**row));
}

Result<std::vector<Client>> AuthStore::ListClients() {
  auto rows = Query(
      db_, std::string("SELECT ") + kClientColumns + " FROM auth_client ORDER BY name, client_id",
      {}, 10);
  if (!rows) return std::move(rows).error();
  std::vector<Client> out;
  for (const auto& r : *rows) out.push_back(ClientFromRow(r));
  return out;
}

Status AuthStore::DeleteClient(std::string_view client_id) {
  return Done(Exec(db_, "DELETE FROM auth_client WHERE client_id = ?", {std::string(client_id)}));
}

Status AuthStore::AddUser(const User& u) {
  return Done(Exec(db_,
                   "INSERT INTO auth_user (user_id, username, password_hash, fhir_user, display) "
                   "VALUES (?, ?, ?, ?, ?)",
                   {u.user_id, u.username, u.password_hash, u.fhir_user, u.display}));
}

Result<std::optional<User>> AuthStore::FindUserByName(std::string_view username) {
  auto row = QueryOne(db_,
                      "SELECT user_id, username, password_hash, fhir_user, display FROM auth_user "
                      "WHERE username = ?",
                      {std::string(username)}, 5);
  if (!row) return std::move(row).error();
  if (!*row) return std::optional<User>();
  return std::optional<User>(UserFromRow(**row));
}

Result<std::optional<User>> AuthStore::FindUser(std::string_view user_id) {
  auto row = QueryOne(db_,
                      "SELECT user_id, username, password_hash, fhir_user, display FROM auth_user "
                      "WHERE user_id = ?",
                      {std::string(user_id)}, 5);
  if (!row) return std::move(row).error();
  if (!*row) return std::optional<User>();
  return std::optional<User>(UserFromRow(**row));
}

Result<std::vector<User>> AuthStore::ListUsers() {
  auto rows = Query(db_,
                    "SELECT user_id, username, password_hash, fhir_user, display FROM auth_user "
                    "ORDER BY username",
                    {}, 5);
  if (!rows) return std::move(rows).error();
  std::vector<User> out;
  for (const auto& r : *rows) out.push_back(UserFromRow(r));
  return out;
}

Result<std::vector<StoredKey>> AuthStore::ListKeys() {
  auto rows =
      Query(db_, "SELECT kid, private_jwk, created, retired FROM auth_key ORDER BY created", {}, 4);
  if (!rows) return std::move(rows).error();
  std::vector<StoredKey> out;
  for (const auto& r : *rows) out.push_back(StoredKey{r[0], r[1], ToInt(r[2]), ToInt(r[3])});
  return out;
}

Status AuthStore::AddKey(const StoredKey& k) {
  return Done(Exec(db_,
                   "INSERT INTO auth_key (kid, private_jwk, created, retired) VALUES (?, ?, ?, ?)",
                   {k.kid, k.private_jwk, k.created, k.retired}));
}

Status AuthStore::RetireKeys(std::string_view except_kid, int64_t now) {
  return Done(Exec(db_, "UPDATE auth_key SET retired = ? WHERE retired = 0 AND kid <> ?",
                   {now, std::string(except_kid)}));
}

Status AuthStore::DeleteKeysRetiredBefore(int64_t before) {
  return Done(Exec(db_, "DELETE FROM auth_key WHERE retired <> 0 AND retired < ?", {before}));
}

Status AuthStore::PutSession(std::string_view id_hash, const Session& s) {
  return Done(Exec(db_,
                   "INSERT INTO auth_session (id_hash, user_id, csrf, expires) VALUES "
                   "(?, ?, ?, ?) ON CONFLICT (id_hash) DO UPDATE SET user_id = excluded.user_id, "
                   "csrf = excluded.csrf, expires = excluded.expires",
                   {std::string(id_hash), s.user_id, s.csrf, s.expires}));
}

Result<std::optional<Session>> AuthStore::FindSession(std::string_view id_hash, int64_t now) {
  auto row = QueryOne(db_,
                      "SELECT user_id, csrf, expires FROM auth_session WHERE id_hash = ? AND "
                      "expires > ?",
                      {std::string(id_hash), now}, 3);
  if (!row) return std::move(row).error();
  if (!*row) return std::optional<Session>();
  return std::optional<Session>(Session{(**row)[0], (**row)[1], ToInt((**row)[2])});
}

Status AuthStore::DeleteSession(std::string_view id_hash) {
  return Done(Exec(db_, "DELETE FROM auth_session WHERE id_hash = ?", {std::string(id_hash)}));
}

Status AuthStore::PutRequest(std::string_view id, std::string_view session_hash,
                             const json::Value& state, int64_t expires) {
  return Done(Exec(db_,
                   "INSERT INTO auth_request (id, session_hash, state, expires) VALUES "
                   "(?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET session_hash = "
                   "excluded.session_hash, state = excluded.state, expires = excluded.expires",
                   {std::string(id), std::string(session_hash), json::Write(state), expires}));
}

Result<std::optional<json::Value>> AuthStore::FindRequest(std::string_view id,
                                                          std::string_view session_hash,
                                                          int64_t now) {
  auto row = QueryOne(db_,
                      "SELECT state FROM auth_request WHERE id = ? AND session_hash = ? AND "
                      "expires > ?",
                      {std::string(id), std::string(session_hash), now}, 1);
  if (!row) return std::move(row).error();
  if (!*row) return std::optional<json::Value>();
  auto parsed = json::Parse((**row)[0]);
  if (!parsed) return Error::Internal("A stored authorization request is corrupt");
  return std::optional<json::Value>(std::move(parsed).value());
}

Status AuthStore::DeleteRequest(std::string_view id) {
  return Done(Exec(db_, "DELETE FROM auth_request WHERE id = ?", {std::string(id)}));
}

Status AuthStore::PutCode(std::string_view hash, const Grant& grant, int64_t expires) {
  return PutSingleUse(db_, "code", hash, json::Write(grant.ToJson()), grant.grant_id,
                      grant.client_id, grant.user_id, expires);
}

Result<std::optional<Consumed>> AuthStore::ConsumeCode(std::string_view hash) {
  return Consume(db_, "code", hash);
}

Status AuthStore::PutLaunch(std::string_view hash, const json::Value& context, int64_t expires) {
  return PutSingleUse(db_, "launch", hash, json::Write(context), "", "", "", expires);
}

Result<std::optional<Consumed>> AuthStore::ConsumeLaunch(std::string_view hash) {
  return Consume(db_, "launch", hash);
}

Status AuthStore::PutRefresh(std::string_view hash, const Grant& grant, int64_t expires) {
  return PutSingleUse(db_, "refresh", hash, json::Write(grant.ToJson()), grant.grant_id,
                      grant.client_id, grant.user_id, expires);
}

Result<std::optional<Consumed>> AuthStore::ConsumeRefresh(std::string_view hash) {
  return Consume(db_, "refresh", hash);
}

Result<std::optional<Consumed>> AuthStore::FindRefresh(std::string_view hash) {
  auto row = QueryOne(db_,
                      "SELECT payload, grant_id, expires, used FROM auth_single_use WHERE hash = ? "
                      "AND kind = 'refresh'",
                      {std::string(hash)}, 4);
  if (!row) return std::move(row).error();
  if (!*row) return std::optional<Consumed>();
  return std::optional<Consumed>(
      Consumed{(**row)[0], (**row)[1], ToInt((**row)[2]), (**row)[3] == "0"});
}

Status AuthStore::Revoke(std::string_view id, int64_t expires) {
  return Done(Exec(db_,
                   "INSERT INTO auth_revoked (id, expires) VALUES (?, ?) ON CONFLICT (id) DO "
                   "UPDATE SET expires = excluded.expires",
                   {std::string(id), expires}));
}

Result<std::vector<std::string>> AuthStore::ListRevoked(int64_t now) {
  auto rows = Query(db_, "SELECT id FROM auth_revoked WHERE expires > ?", {now}, 1);
  if (!rows) return std::move(rows).error();
  std::vector<std::string> out;
  for (auto& r : *rows) out.push_back(std::move(r[0]));
  return out;
}

Result<std::vector<std::string>> AuthStore::RevokeClientGrants(std::string_view client_id,
                                                               std::string_view user_id,
                                                               int64_t expires) {
  auto rows = Query(db_,
                    "SELECT DISTINCT grant_id FROM auth_single_use WHERE client_id = ? AND "
                    "user_id = ? AND grant_id <> ''",
                    {std::string(client_id), std::string(user_id)}, 1);
  if (!rows) return std::move(rows).error();
  std::vector<std::string> out;
  for (auto& r : *rows) {
    FHIRSTONE_RETURN_IF_ERROR(Revoke(r[0], expires));
    out.push_back(std::move(r[0]));
  }
  FHIRSTONE_RETURN_IF_ERROR(Done(Exec(db_,
                                      "UPDATE auth_single_use SET used = 1 WHERE client_id = ? "
                                      "AND user_id = ?",
                                      {std::string(client_id), std::string(user_id)})));
  return out;
}

Status AuthStore::PutConsent(const Consent& c) {
  return Done(Exec(db_,
                   "INSERT INTO auth_consent (user_id, client_id, scope, granted_at, "
                   "consent_resource_id) VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, client_id) "
                   "DO UPDATE SET scope = excluded.scope, granted_at = excluded.granted_at, "
                   "consent_resource_id = excluded.consent_resource_id",
                   {c.user_id, c.client_id, c.scope, c.granted_at, c.consent_resource_id}));
}

Result<std::optional<Consent>> AuthStore::FindConsent(std::string_view user_id,
                                                      std::string_view client_id) {
  auto row = QueryOne(db_,
                      "SELECT user_id, client_id, scope, granted_at, consent_resource_id FROM "
                      "auth_consent WHERE user_id = ? AND client_id = ?",
                      {std::string(user_id), std::string(client_id)}, 5);
  if (!row) return std::move(row).error();
  if (!*row) return std::optional<Consent>();
  const Row& r = **row;
  return std::optional<Consent>(Consent{r[0], r[1], r[2], ToInt(r[3]), r[4]});
}

Result<std::vector<Consent>> AuthStore::ListConsents(std::string_view user_id) {
  auto rows = Query(db_,
                    "SELECT user_id, client_id, scope, granted_at, consent_resource_id FROM "
                    "auth_consent WHERE user_id = ? ORDER BY granted_at DESC",
                    {std::string(user_id)}, 5);
  if (!rows) return std::move(rows).error();
  std::vector<Consent> out;
  for (const auto& r : *rows) out.push_back(Consent{r[0], r[1], r[2], ToInt(r[3]), r[4]});
  return out;
}

Status AuthStore::DeleteConsent(std::string_view user_id, std::string_view client_id) {
  return Done(Exec(db_, "DELETE FROM auth_consent WHERE user_id = ? AND client_id = ?",
                   {std::string(user_id), std::string(client_id)}));
}

Result<bool> AuthStore::RememberJti(std::string_view client_id, std::string_view jti,
                                    int64_t expires) {
  auto changed =
      Exec(db_,
           "INSERT INTO auth_jti (client_id, jti, expires) VALUES (?, ?, ?) ON CONFLICT DO "
           "NOTHING",
           {std::string(client_id), std::string(jti), expires});
  if (!changed) return std::move(changed).error();
  return *changed == 1;
}

Status AuthStore::Purge(int64_t now) {
  FHIRSTONE_RETURN_IF_ERROR(Done(Exec(db_, "DELETE FROM auth_session WHERE expires <= ?", {now})));
  FHIRSTONE_RETURN_IF_ERROR(Done(Exec(db_, "DELETE FROM auth_request WHERE expires <= ?", {now})));
  FHIRSTONE_RETURN_IF_ERROR(
      Done(Exec(db_, "DELETE FROM auth_single_use WHERE expires <= ?", {now})));
  FHIRSTONE_RETURN_IF_ERROR(Done(Exec(db_, "DELETE FROM auth_revoked WHERE expires <= ?", {now})));
  return Done(Exec(db_, "DELETE FROM auth_jti WHERE expires <= ?", {now}));
}

}  // namespace fhirstone::oauth
