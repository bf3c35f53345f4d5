// Bulk Data Access 2.0 export end to end over HTTP, with backend-services tokens: kick-off
// validation, the manifest, NDJSON files (and gzip), scopes, Group and Patient level, _type,
// _typeFilter, _since with deletions, cancellation and ownership of jobs.
#include <gtest/gtest.h>
#include <zlib.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "auth/jose/jose.h"
#include "common/json.h"
#include "common/strings.h"
#include "db/database.h"
#include "server/admin.h"
#include "server/app.h"
#include "support/databases.h"
#include "support/fakes.h"
#include "support/http_client.h"

namespace fhirstone {
namespace {

namespace fs = std::filesystem;

json::Value ParseJson(const std::string& body) {
  auto v = json::Parse(body);
  return v ? std::move(v).value() : json::Value();
}

std::string Gunzip(const std::string& data) {
  z_stream z{};
  inflateInit2(&z, 15 + 16);
  std::string out(1 << 20, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  inflate(&z, Z_FINISH);
  out.resize(z.total_out);
  inflateEnd(&z);
  return out;
}

class BulkTest : public ::testing::TestWithParam<db::Dialect> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("fhirstone-bulk-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    {
      std::unique_ptr<db::Database> fresh;  // emptied; the server opens its own
      FHIRSTONE_ASSIGN_FRESH_DATABASE(fresh, GetParam(), dir_ / "db", &db_);
    }
    server::ServeConfig config;
    config.listen = "127.0.0.1:0";
    config.db = db_;
    config.threads = 2;
    config.bulk_dir = (dir_ / "bulk").string();
    config.bulk_expire_seconds = 600;
    config_ = config;
    auto app = server::App::Start(config, &clock_, nullptr);
    ASSERT_TRUE(app) << app.error().message();
    app_ = std::move(app).value();
    port_ = app_->port();
    base_ = app_->base_url();
    admin_ = Client("admin", "system/*.cruds");
    Put("Patient/pa", R"({"resourceType":"Patient","id":"pa","gender":"female"})");
    Put("Patient/pb", R"({"resourceType":"Patient","id":"pb","gender":"male"})");
    for (auto [id, patient, code] :
         {std::tuple{"o1", "pa", "8867-4"}, std::tuple{"o2", "pa", "29463-7"},
          std::tuple{"o3", "pb", "8867-4"}})
      Put(std::string("Observation/") + id,
          std::string(R"({"resourceType":"Observation","id":")") + id +
              R"(","status":"final","code":{"coding":[{"system":"http://loinc.org","code":")" +
              code + R"("}]},"subject":{"reference":"Patient/)" + patient + R"("}})");
    Put("Group/g1",
        R"({"resourceType":"Group","id":"g1","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/pa"}}]})");
  }

  void TearDown() override {
    if (app_) app_->Stop();
    app_.reset();
    fs::remove_all(dir_);
  }

  // A confidential client's client_credentials token.
  std::string Client(const std::string& id, const std::string& scopes) {
    server::ClientSpec spec;
    spec.client_id = id;
    spec.name = id;
    spec.type = "confidential-symmetric";
    spec.redirect_uris = {"https://" + id + ".example/cb"};
    spec.scopes = scopes;
    auto reg = server::AddClient(db_, spec);
    EXPECT_TRUE(reg) << reg.error().message();
    std::string basic = jose::Base64UrlEncode(id + ":" + reg->client_secret);
    for (char& c : basic) c = c == '-' ? '+' : c == '_' ? '/' : c;
    while (basic.size() % 4) basic += '=';
    auto r = Send("POST", "/auth/token", "grant_type=client_credentials&scope=" + scopes,
                  {{"Authorization", "Basic " + basic},
                   {"Content-Type", "application/x-www-form-urlencoded"}});
    EXPECT_EQ(r.status, 200) << r.body;
    return std::string(ParseJson(r.body).GetString("access_token"));
  }

  http::Response Send(std::string method, std::string target, std::string body,
                      http::Headers headers) {
    if (target.starts_with(base_)) target = target.substr(base_.size());
    http::Request r = test::MakeRequest(std::move(method), std::move(target), std::move(body));
    for (auto& h : headers) r.headers.push_back(std::move(h));
    auto response = test::Fetch("127.0.0.1", port_, std::move(r));
    EXPECT_TRUE(response) << (response ? "" : response.error().message());
    return response ? std::move(response).value() : http::Response{};
  }

  http::Response Authed(const std::string& method, const std::string& target,
                        const std::string& token, http::Headers extra = {},
                        const std::string& body = "") {
    extra.emplace_back("Authorization", "Bearer " + token);
    return Send(method, target, body, std::move(extra));
  }

  void Put(const std::string& path, const std::string& body) {
    auto r =
        Authed("PUT", "/fhir/" + path, admin_, {{"Content-Type", "application/fhir+json"}}, body);
    ASSERT_TRUE(r.status == 200 || r.status == 201) << path << ": " << r.body;
  }

  http::Response KickOff(const std::string& target, const std::string& token) {
    return Authed("GET", target, token,
                  {{"Accept", "application/fhir+json"}, {"Prefer", "respond-async"}});
  }

  // Polls the status URL until the export is done (or 20 s pass): the manifest.
  json::Value Wait(const std::string& status_url, const std::string& token) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = Authed("GET", status_url, token);
      if (r.status == 200) {
        EXPECT_FALSE(r.Header("Expires").empty());
        return ParseJson(r.body);
      }
      EXPECT_EQ(r.status, 202) << r.body;
      if (r.status != 202) return {};
      EXPECT_FALSE(r.Header("X-Progress").empty());
      EXPECT_FALSE(r.Header("Retry-After").empty());
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "the export did not finish";
    return {};
  }

  // type -> the ids in that type's files.
  std::map<std::string, std::vector<std::string>> Files(const json::Value& manifest,
                                                        const std::string& token) {
    std::map<std::string, std::vector<std::string>> out;
    for (const auto& item : manifest.Find("output")->as_array()) {
      auto r = Authed("GET", std::string(item.GetString("url")), token);
      EXPECT_EQ(r.status, 200);
      EXPECT_EQ(r.Header("Content-Type"), "application/fhir+ndjson");
      int lines = 0;
      for (auto line : Split(r.body, '\n')) {
        if (line.empty()) continue;
        ++lines;
        json::Value resource = ParseJson(std::string(line));
        EXPECT_EQ(resource.GetString("resourceType"), item.GetString("type"));
        out[std::string(item.GetString("type"))].emplace_back(resource.GetString("id"));
      }
      EXPECT_EQ(std::to_string(lines), json::Write(*item.Find("count")));
    }
    return out;
  }

  test::FakeClock clock_{SystemClock().NowMicros()};
  server::ServeConfig config_;
  fs::path dir_;
  std::string db_;
  std::unique_ptr<server::App> app_;
  uint16_t port_ = 0;
  std::string base_, admin_;
};

TEST_P(BulkTest, KickOffIsValidated) {
  std::string token = Client("backend", "system/*.rs");
  EXPECT_EQ(Send("GET", "/fhir/$export", "", {{"Prefer", "respond-async"}}).status, 401);
  EXPECT_EQ(Authed("GET", "/fhir/$export", token, {{"Accept", "application/fhir+json"}}).status,
            400);
  EXPECT_EQ(
      Authed("GET", "/fhir/$export", token, {{"Accept", "text/csv"}, {"Prefer", "respond-async"}})
          .status,
      400);
  EXPECT_EQ(KickOff("/fhir/$export?_outputFormat=text/csv", token).status, 400);
  EXPECT_EQ(KickOff("/fhir/$export?_type=Nope", token).status, 400);
  EXPECT_EQ(KickOff("/fhir/$export?_since=yesterday", token).status, 400);
  EXPECT_EQ(KickOff("/fhir/$export?_typeFilter=Observation?nope=1", token).status, 400);
  EXPECT_EQ(KickOff("/fhir/Group/missing/$export", token).status, 404);
  std::string narrow = Client("narrow", "system/Observation.rs");
  auto refused = KickOff("/fhir/$export?_type=Patient", narrow);
  EXPECT_EQ(refused.status, 403);
  EXPECT_NE(refused.body.find("OperationOutcome"), std::string::npos);
  // A filter's chain or reverse chain reads another type: one the token may not export.
  auto chained = KickOff(
      "/fhir/$export?_type=Observation&_typeFilter=Observation%3Fsubject:Patient.name%3Dx", narrow);
  EXPECT_EQ(chained.status, 403) << chained.body;
  auto reverse = KickOff(
      "/fhir/$export?_type=Observation&_typeFilter=Observation%3F_has:Provenance:target:agent%3Dx",
      narrow);
  EXPECT_EQ(reverse.status, 403) << reverse.body;
  EXPECT_EQ(
      KickOff("/fhir/$export?_type=Observation&_typeFilter=Observation%3Fsubject:Patient.name%3Dx",
              token)
          .status,
      202);
}

TEST_P(BulkTest, SystemExportManifestAndFiles) {
  std::string token = Client("backend", "system/*.rs");
  auto kick = KickOff("/fhir/$export?_type=Patient,Observation", token);
  ASSERT_EQ(kick.status, 202) << kick.body;
  std::string status_url(kick.Header("Content-Location"));
  ASSERT_TRUE(status_url.starts_with(base_ + "/bulk/status/")) << status_url;
  json::Value manifest = Wait(status_url, token);
  ASSERT_TRUE(manifest.is_object());
  EXPECT_FALSE(manifest.GetString("transactionTime").empty());
  EXPECT_EQ(manifest.GetString("request"), base_ + "/fhir/$export?_type=Patient,Observation");
  EXPECT_EQ(json::Write(*manifest.Find("requiresAccessToken")), "true");
  EXPECT_EQ(json::Write(*manifest.Find("error")), "[]");
  auto files = Files(manifest, token);
  EXPECT_EQ(files["Patient"].size(), 2u);
  EXPECT_EQ(files["Observation"].size(), 3u);
  EXPECT_EQ(files.count("Group"), 0u);
  // Files are served gzipped when asked, and only to the client that asked.
  std::string url(manifest.Find("output")->as_array()[0].GetString("url"));
  auto gz = Authed("GET", url, token, {{"Accept-Encoding", "gzip"}});
  EXPECT_EQ(gz.Header("Content-Encoding"), "gzip");
  EXPECT_NE(Gunzip(gz.body).find("resourceType"), std::string::npos);
  std::string other = Client("other", "system/*.rs");
  EXPECT_EQ(Authed("GET", url, other).status, 404);
  EXPECT_EQ(Authed("GET", status_url, other).status, 404);
  EXPECT_EQ(Send("GET", url, "", {}).status, 401);
}

// A manifest or a file whose rows cannot be read is an error, not an empty manifest or a 404.
TEST_P(BulkTest, StatusAndFilesAreErrorsWhenTheirRowsCannotBeRead) {
  std::string token = Client("backend", "system/*.rs");
  auto kick = KickOff("/fhir/$export?_type=Patient", token);
  ASSERT_EQ(kick.status, 202) << kick.body;
  std::string status_url(kick.Header("Content-Location"));
  json::Value manifest = Wait(status_url, token);
  ASSERT_TRUE(manifest.is_object());
  std::string url(manifest.Find("output")->as_array()[0].GetString("url"));
  auto db = db::Database::Open(db_);
  ASSERT_TRUE(db) << db.error().message();
  auto rename = [&](const char* from, const char* to) {
    auto lease = (*db)->Acquire();
    ASSERT_TRUE(lease);
    ASSERT_TRUE((*lease)->Execute(std::string("ALTER TABLE ") + from + " RENAME TO " + to));
  };
  rename("bulk_file", "bulk_file_away");
  auto status = Authed("GET", status_url, token);
  EXPECT_GE(status.status, 500) << status.body;
  EXPECT_NE(status.body.find("OperationOutcome"), std::string::npos) << status.body;
  auto file = Authed("GET", url, token);
  EXPECT_GE(file.status, 500) << file.body;
  rename("bulk_file_away", "bulk_file");
  EXPECT_EQ(Authed("GET", status_url, token).status, 200);
  EXPECT_EQ(Authed("GET", url, token).status, 200);
}

TEST_P(BulkTest, ScopesLimitWhatIsExported) {
  std::string token = Client("narrow", "system/Observation.rs");
  auto kick = KickOff("/fhir/$export", token);
  ASSERT_EQ(kick.status, 202) << kick.body;
  auto files = Files(Wait(std::string(kick.Header("Content-Location")), token), token);
  EXPECT_EQ(files.size(), 1u);
  EXPECT_EQ(files["Observation"].size(), 3u);
}

TEST_P(BulkTest, GroupAndPatientLevels) {
  std::string token = Client("backend", "system/*.rs");
  auto group = KickOff("/fhir/Group/g1/$export", token);
  ASSERT_EQ(group.status, 202) << group.body;
  auto files = Files(Wait(std::string(group.Header("Content-Location")), token), token);
  EXPECT_EQ(files["Patient"], std::vector<std::string>{"pa"});
  EXPECT_EQ(files["Observation"], (std::vector<std::string>{"o1", "o2"}));
  EXPECT_EQ(files["Group"], std::vector<std::string>{"g1"});  // in pa's compartment (member)

  auto patient = Authed(
      "POST", "/fhir/Patient/$export", token,
      {{"Accept", "application/fhir+json"},
       {"Prefer", "respond-async"},
       {"Content-Type", "application/fhir+json"}},
      R"({"resourceType":"Parameters","parameter":[{"name":"patient","valueReference":{"reference":"Patient/pb"}},{"name":"_type","valueString":"Observation"}]})");
  ASSERT_EQ(patient.status, 202) << patient.body;  // the patient parameter narrows it
  files = Files(Wait(std::string(patient.Header("Content-Location")), token), token);
  EXPECT_EQ(files["Observation"], std::vector<std::string>{"o3"});
  auto all = KickOff("/fhir/Patient/$export?_type=Observation", token);
  ASSERT_EQ(all.status, 202);
  files = Files(Wait(std::string(all.Header("Content-Location")), token), token);
  EXPECT_EQ(files["Observation"].size(), 3u);
}

TEST_P(BulkTest, TypeFilterSinceAndDeletions) {
  std::string token = Client("backend", "system/*.rs");
  auto filtered = KickOff("/fhir/$export?_type=Observation&_typeFilter=" +
                              std::string("Observation%3Fcode%3Dhttp%3A%2F%2Floinc.org%7C8867-4"),
                          token);
  ASSERT_EQ(filtered.status, 202) << filtered.body;
  json::Value manifest = Wait(std::string(filtered.Header("Content-Location")), token);
  auto files = Files(manifest, token);
  EXPECT_EQ(files["Observation"], (std::vector<std::string>{"o1", "o3"}));
  std::string since(manifest.GetString("transactionTime"));
  // Several filters of a type are OR'ed; unfiltered types come whole (one scan beside).
  auto two = KickOff("/fhir/$export?_type=Patient,Observation&_typeFilter=" +
                         std::string("Observation%3Fcode%3Dhttp%3A%2F%2Floinc.org%7C29463-7,"
                                     "Observation%3Fsubject%3DPatient%2Fpb"),
                     token);
  ASSERT_EQ(two.status, 202) << two.body;
  auto both = Files(Wait(std::string(two.Header("Content-Location")), token), token);
  EXPECT_EQ(both["Observation"], (std::vector<std::string>{"o2", "o3"}));
  EXPECT_EQ(both["Patient"].size(), 2u);
  // Changes after that instant: one update, one deletion.
  Put("Observation/o2",
      R"({"resourceType":"Observation","id":"o2","status":"amended","code":{"text":"w"},"subject":{"reference":"Patient/pa"}})");
  ASSERT_EQ(Authed("DELETE", "/fhir/Observation/o3", admin_).status, 204);
  auto changed = KickOff("/fhir/$export?_type=Observation&_since=" + since, token);
  ASSERT_EQ(changed.status, 202) << changed.body;
  manifest = Wait(std::string(changed.Header("Content-Location")), token);
  files = Files(manifest, token);
  EXPECT_EQ(files["Observation"], std::vector<std::string>{"o2"});
  ASSERT_TRUE(manifest.Find("deleted")) << json::Write(manifest);
  std::string deleted_url(manifest.Find("deleted")->as_array()[0].GetString("url"));
  auto deleted = Authed("GET", deleted_url, token);
  EXPECT_NE(deleted.body.find("\"method\":\"DELETE\",\"url\":\"Observation/o3\""),
            std::string::npos)
      << deleted.body;
}

TEST_P(BulkTest, CancelledExportsAreGone) {
  std::string token = Client("backend", "system/*.rs");
  auto kick = KickOff("/fhir/$export", token);
  ASSERT_EQ(kick.status, 202);
  std::string status_url(kick.Header("Content-Location"));
  auto cancelled = Authed("DELETE", status_url, token);
  EXPECT_EQ(cancelled.status, 202);
  auto after = Authed("GET", status_url, token);
  EXPECT_EQ(after.status, 404);
  EXPECT_NE(after.body.find("OperationOutcome"), std::string::npos);
}

TEST_P(BulkTest, FilesExpire) {
  std::string token = Client("backend", "system/*.rs");
  auto kick = KickOff("/fhir/$export?_type=Patient", token);
  ASSERT_EQ(kick.status, 202);
  std::string status_url(kick.Header("Content-Location"));
  json::Value manifest = Wait(status_url, token);
  std::string url(manifest.Find("output")->as_array()[0].GetString("url"));
  EXPECT_EQ(Authed("GET", url, token).status, 200);
  clock_.Advance(601LL * 1000000);
  std::string fresh = Client("backend2", "system/*.rs");  // the first token expired meanwhile
  EXPECT_EQ(Authed("GET", url, fresh).status, 404);
  auto gone = Authed("GET", status_url, token);
  EXPECT_EQ(gone.status, 401);  // the token is older than the files
}

TEST_P(BulkTest, JobsSurviveARestart) {
  std::string token = Client("backend", "system/*.rs");
  auto kick = KickOff("/fhir/$export?_type=Observation", token);
  ASSERT_EQ(kick.status, 202);
  std::string status_url(kick.Header("Content-Location"));
  app_->Stop();  // whatever state the job was in, it is in the database
  config_.listen = "127.0.0.1:" + std::to_string(port_);  // the same base URL: tokens stay valid
  auto app = server::App::Start(config_, &clock_, nullptr);
  ASSERT_TRUE(app) << app.error().message();
  app_ = std::move(app).value();
  port_ = app_->port();
  std::string old_base = base_;
  base_ = app_->base_url();
  status_url = base_ + status_url.substr(old_base.size());
  json::Value manifest = Wait(status_url, token);  // tokens verify on the new process too
  auto files = Files(manifest, token);
  EXPECT_EQ(files["Observation"].size(), 3u);
}

// Nodes on one database with one shared bulk folder: a job kicked off on one node is run by
// one of them (SKIP LOCKED), polled on another and downloaded from a third.
TEST_P(BulkTest, SeveralNodesShareJobsAndFiles) {
  std::vector<std::unique_ptr<server::App>> nodes;
  for (int i = 0; i < 2; ++i) {
    server::ServeConfig config = config_;
    config.base_url = base_;  // one public origin behind a load balancer
    config.access_log = "off";
    auto node = server::App::Start(config, &clock_, nullptr);
    ASSERT_TRUE(node) << node.error().message();
    nodes.push_back(std::move(node).value());
  }
  std::string token = Client("backend", "system/*.rs");
  uint16_t first = port_;
  port_ = nodes[0]->port();
  auto kick = KickOff("/fhir/$export?_type=Patient,Observation", token);
  ASSERT_EQ(kick.status, 202) << kick.body;
  std::string status_url(kick.Header("Content-Location"));
  port_ = nodes[1]->port();
  json::Value manifest = Wait(status_url, token);
  ASSERT_TRUE(manifest.is_object());
  port_ = first;
  auto files = Files(manifest, token);
  EXPECT_EQ(files["Patient"].size(), 2u);
  EXPECT_EQ(files["Observation"].size(), 3u);
  // A node with a bulk folder of its own cannot serve the files: a 404 that says why.
  server::ServeConfig alone = config_;
  alone.base_url = base_;
  alone.access_log = "off";
  alone.bulk_dir = (dir_ / "elsewhere").string();
  auto separate = server::App::Start(alone, &clock_, nullptr);
  ASSERT_TRUE(separate) << separate.error().message();
  port_ = (*separate)->port();
  auto missing =
      Authed("GET", std::string(manifest.Find("output")->as_array()[0].GetString("url")), token);
  EXPECT_EQ(missing.status, 404);
  EXPECT_NE(missing.body.find("--bulk-dir"), std::string::npos) << missing.body;
  port_ = first;
  (*separate)->Stop();
  for (auto& node : nodes) node->Stop();
}

INSTANTIATE_TEST_SUITE_P(Dialects, BulkTest,
                         ::testing::Values(db::Dialect::kSqlite, db::Dialect::kPostgres),
                         [](const auto& info) { return test::DialectName(info.param); });

}  // namespace
}  // namespace fhirstone
