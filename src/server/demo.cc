#include "server/demo.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "api/fhir_api.h"
#include "auth/oauth/auth_store.h"
#include "auth/oauth/crypto.h"
#include "auth/oauth/registration.h"
#include "common/json.h"
#include "db/database.h"
#include "generate/generator.h"

namespace fhirstone::server {
namespace {

constexpr uint64_t kDemoSeed = 20250101;

std::vector<db::Migration> Migrations() {
  return {{3001, "demo accounts", R"sql(
CREATE TABLE sandbox_demo_account (
  username TEXT PRIMARY KEY, password TEXT NOT NULL, display TEXT NOT NULL,
  fhir_user TEXT NOT NULL, role TEXT NOT NULL, position INTEGER NOT NULL);
)sql"}};
}

Result<std::vector<DemoAccount>> LoadAccounts(db::Database& db) {
  auto lease = db.Acquire();
  if (!lease) return std::move(lease).error();
  auto stmt = (*lease)->Prepare(
      "SELECT username, password, display, fhir_user, role FROM sandbox_demo_account ORDER BY "
      "position");
  if (!stmt) return std::move(stmt).error();
  std::vector<DemoAccount> out;
  while (true) {
    auto row = (*stmt)->Step();
    if (!row) return std::move(row).error();
    if (!*row) break;
    out.push_back(
        DemoAccount{std::string((*stmt)->ColumnText(0)), std::string((*stmt)->ColumnText(1)),
                    std::string((*stmt)->ColumnText(2)), std::string((*stmt)->ColumnText(3)),
                    std::string((*stmt)->ColumnText(4))});
  }
  (*stmt)->Reset();
  return out;
}

Status SaveAccount(db::Database& db, const DemoAccount& a, int position) {
  auto lease = db.Acquire();
  if (!lease) return std::move(lease).error();
  auto stmt = (*lease)->Prepare(
      "INSERT INTO sandbox_demo_account (username, password, display, fhir_user, role, position) "
      "VALUES (?, ?, ?, ?, ?, ?)");
  if (!stmt) return std::move(stmt).error();
  (*stmt)->BindText(1, a.username);
  (*stmt)->BindText(2, a.password);
  (*stmt)->BindText(3, a.display);
  (*stmt)->BindText(4, a.fhir_user);
  (*stmt)->BindText(5, a.role);
  (*stmt)->BindInt(6, position);
  auto done = (*stmt)->Run();
  if (!done) return std::move(done).error();
  return Ok();
}

// GET through the API with full access (the server's own setup).
Result<json::Value> Get(api::FhirApi& api, std::string target) {
  http::Request request;
  request.method = "GET";
  request.target = std::move(target);
  http::Response response = api.Handle(request);
  if (response.status != 200)
    return Error::Internal("demo setup: " + request.target + " answered " +
                           std::to_string(response.status));
  return json::Parse(response.body);
}

std::string NameOf(const json::Value& resource) {
  const json::Value* names = resource.Find("name");
  if (!names || !names->is_array() || names->as_array().empty()) return "";
  const json::Value& n = names->as_array()[0];
  std::string out;
  if (const json::Value* prefix = n.Find("prefix"); prefix && prefix->is_array())
    for (const auto& p : prefix->as_array())
      if (p.is_string()) out += p.as_string() + " ";
  if (const json::Value* given = n.Find("given"); given && given->is_array())
    for (const auto& g : given->as_array())
      if (g.is_string()) out += g.as_string() + " ";
  out += n.GetString("family");
  return out;
}

// The first entries of a search Bundle.
std::vector<json::Value> Entries(const json::Value& bundle) {
  std::vector<json::Value> out;
  if (const json::Value* entries = bundle.Find("entry"); entries && entries->is_array())
    for (const auto& e : entries->as_array())
      if (const json::Value* r = e.Find("resource")) out.push_back(*r);
  return out;
}

}  // namespace

Result<std::vector<DemoAccount>> SetUpDemo(db::Database& db, api::FhirApi& api,
                                           oauth::AuthStore& auth, const std::string& base_url,
                                           int patients) {
  FHIRSTONE_RETURN_IF_ERROR(db.Migrate(Migrations()));
  auto existing = LoadAccounts(db);
  if (!existing) return std::move(existing).error();
  if (!existing->empty()) return existing;

  auto start = std::chrono::steady_clock::now();
  spdlog::info("demo: generating and loading {} synthetic patients (once)", patients);
  generate::GenerateOptions options;
  options.patients = patients;
  options.seed = kDemoSeed;
  int64_t bundles = 0;
  FHIRSTONE_RETURN_IF_ERROR(
      generate::Generate(options, [&](std::string_view name, std::string bundle) -> Status {
        http::Request request;
        request.method = "POST";
        request.target = "/fhir";
        request.headers.emplace_back("Content-Type", "application/fhir+json");
        request.headers.emplace_back("Prefer", "return=minimal");
        request.body = std::move(bundle);
        http::Response response = api.Handle(request);
        if (response.status != 200)
          return Error::Internal("demo setup: loading " + std::string(name) + " answered " +
                                 std::to_string(response.status) + ": " +
                                 response.body.substr(0, 300));
        if (++bundles % 25 == 0)
          spdlog::info("demo: {} of {} patients loaded", bundles - 1, patients);
        return Ok();
      }));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::info("demo: {} patients loaded in {:.1f} s", patients, seconds);

  auto found_patients = Get(api, "/fhir/Patient?_count=2&_sort=family,given");
  if (!found_patients) return std::move(found_patients).error();
  auto found_practitioners = Get(api, "/fhir/Practitioner?_count=1&_sort=_id");
  if (!found_practitioners) return std::move(found_practitioners).error();
  std::vector<json::Value> pats = Entries(*found_patients);
  std::vector<json::Value> prs = Entries(*found_practitioners);
  if (pats.size() < 2 || prs.empty())
    return Error::Internal("demo setup: the generated data lacks patients or practitioners");

  std::vector<DemoAccount> accounts;
  accounts.push_back({"practitioner", oauth::RandomToken(9), NameOf(prs[0]),
                      "Practitioner/" + std::string(prs[0].GetString("id")), "practitioner"});
  accounts.push_back({"patient1", oauth::RandomToken(9), NameOf(pats[0]),
                      "Patient/" + std::string(pats[0].GetString("id")), "patient"});
  accounts.push_back({"patient2", oauth::RandomToken(9), NameOf(pats[1]),
                      "Patient/" + std::string(pats[1].GetString("id")), "patient"});
  int position = 0;
  for (const auto& a : accounts) {
    auto user = auth.FindUserByName(a.username);
    if (!user) return std::move(user).error();
    if (!*user)
      FHIRSTONE_RETURN_IF_ERROR(
          auth.AddUser(oauth::User{oauth::RandomToken(12), a.username,
                                   oauth::HashPassword(a.password), a.fhir_user, a.display}));
    FHIRSTONE_RETURN_IF_ERROR(SaveAccount(db, a, position++));
  }

  auto vitals = auth.FindClient("vitals");
  if (!vitals) return std::move(vitals).error();
  if (!*vitals) {
    oauth::Registration app;
    app.client_id = "vitals";
    app.name = "Vitals (sample app)";
    app.type = "public";
    app.redirect_uris = {base_url + "/apps/vitals/index.html"};
    app.launch_uri = base_url + "/apps/vitals/launch.html";
    app.scopes =
        "launch launch/patient launch/encounter openid fhirUser profile offline_access "
        "online_access patient/*.rs patient/*.read user/*.rs user/*.read";
    auto registered = oauth::RegisterClient(auth, app);
    if (!registered) return std::move(registered).error();
  }
  return accounts;
}

}  // namespace fhirstone::server
