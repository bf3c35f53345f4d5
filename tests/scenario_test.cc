// The HTTP scenario runner: each tests/scenarios/**/*.test file runs against a fresh server
// started in-process on port 0, once on its own SQLite database and once on a fresh PostgreSQL
// schema (the throwaway cluster `make test` starts). The format is described in
// tests/scenarios/README.md.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "common/json.h"
#include "common/strings.h"
#include "server/app.h"
#include "support/databases.h"
#include "support/http_client.h"

namespace fhirstone {
namespace {

namespace fs = std::filesystem;

struct Exchange {
  std::string title;
  int line = 0;
  std::string request_line;
  std::vector<std::string> request_headers;
  std::string body;
  std::vector<std::string> expectations;  // first: the status
};

std::vector<Exchange> ParseScenario(const std::string& text) {
  std::vector<Exchange> out;
  std::istringstream in(text);
  std::string line;
  int number = 0;
  enum { kNone, kRequestLine, kHeaders, kBody, kExpect } state = kNone;
  while (std::getline(in, line)) {
    ++number;
    if (line.starts_with("===")) {
      out.push_back({});
      out.back().title = std::string(Trim(line.substr(3)));
      out.back().line = number;
      state = kRequestLine;
      continue;
    }
    if (state == kNone) continue;
    Exchange& ex = out.back();
    if (state != kBody && line.starts_with("#")) continue;
    if (line == "---") {
      state = kExpect;
      continue;
    }
    switch (state) {
      case kRequestLine:
        if (!Trim(line).empty()) {
          ex.request_line = line;
          state = kHeaders;
        }
        break;
      case kHeaders:
        if (Trim(line).empty()) {
          state = kBody;
        } else {
          ex.request_headers.push_back(line);
        }
        break;
      case kBody:
        if (!ex.body.empty()) ex.body += "\n";
        ex.body += line;
        break;
      case kExpect:
        if (!Trim(line).empty()) ex.expectations.push_back(std::string(Trim(line)));
        break;
      case kNone:
        break;
    }
  }
  return out;
}

std::string Substitute(std::string s, const std::map<std::string, std::string>& vars) {
  for (const auto& [name, value] : vars) {
    std::string key = "{{" + name + "}}";
    for (size_t pos = s.find(key); pos != std::string::npos; pos = s.find(key, pos + value.size()))
      s.replace(pos, key.size(), value);
  }
  return s;
}

// "$.a.b[0].c" -> the value, or nullptr.
const json::Value* JsonPath(const json::Value& root, std::string_view path) {
  if (!path.starts_with("$")) return nullptr;
  path.remove_prefix(1);
  const json::Value* v = &root;
  while (!path.empty() && v) {
    if (path.front() == '.') {
      path.remove_prefix(1);
      size_t end = path.find_first_of(".[");
      std::string_view key = path.substr(0, end);
      v = v->Find(key);
      path = end == std::string_view::npos ? std::string_view() : path.substr(end);
    } else if (path.front() == '[') {
      size_t close = path.find(']');
      if (close == std::string_view::npos) return nullptr;
      auto index = ParseInt64(path.substr(1, close - 1));
      if (!index || !v->is_array() || *index < 0 ||
          static_cast<size_t>(*index) >= v->as_array().size())
        return nullptr;
      v = &v->as_array()[*index];
      path.remove_prefix(close + 1);
    } else {
      return nullptr;
    }
  }
  return v;
}

std::string ScalarText(const json::Value& v) {
  switch (v.type()) {
    case json::Type::kString:
    case json::Type::kNumber:
      return v.as_string();
    case json::Type::kBool:
      return v.as_bool() ? "true" : "false";
    case json::Type::kNull:
      return "null";
    default:
      return json::Write(v);
  }
}

std::string Unquote(std::string_view s) {
  s = Trim(s);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return std::string(s);
}

class ScenarioTest : public ::testing::TestWithParam<std::tuple<std::string, db::Dialect>> {};

TEST_P(ScenarioTest, Runs) {
  const fs::path file = std::get<0>(GetParam());
  const db::Dialect dialect = std::get<1>(GetParam());
  std::ifstream in(file);
  ASSERT_TRUE(in) << file;
  std::stringstream buffer;
  buffer << in.rdbuf();
  auto exchanges = ParseScenario(buffer.str());
  ASSERT_FALSE(exchanges.empty()) << "no exchange in " << file;

  fs::path dir = fs::temp_directory_path() /
                 ("fhirstone-scenario-" + std::to_string(getpid()) + "-" + file.stem().string());
  fs::remove_all(dir);
  fs::create_directories(dir);
  server::ServeConfig config;
  {
    std::unique_ptr<db::Database> fresh;  // emptied; the server opens its own
    FHIRSTONE_ASSIGN_FRESH_DATABASE(fresh, dialect, dir / "db", &config.db);
  }
  config.listen = "127.0.0.1:0";
  config.threads = 2;
  config.max_body_bytes = 1024 * 1024;
  config.read_timeout_ms = 1000;
  config.open = true;  // FHIR behaviour; access control has its own tests (auth_test)
  auto app = server::App::Start(config);
  ASSERT_TRUE(app) << app.error().message();
  const uint16_t port = (*app)->port();
  std::map<std::string, std::string> vars{{"base", (*app)->base_url()}};

  for (const Exchange& ex : exchanges) {
    SCOPED_TRACE(file.filename().string() + ":" + std::to_string(ex.line) + " " + ex.title);
    std::string request_line = Substitute(ex.request_line, vars);
    size_t space = request_line.find(' ');
    ASSERT_NE(space, std::string::npos) << "bad request line: " << request_line;
    std::string target(Trim(request_line.substr(space + 1)));
    if (target.starts_with("http://")) {  // an absolute URL from a link: keep path and query
      size_t path = target.find('/', 7);
      target = path == std::string::npos ? "/" : target.substr(path);
    }
    http::Request request =
        test::MakeRequest(request_line.substr(0, space), target, Substitute(ex.body, vars));
    for (const std::string& h : ex.request_headers) {
      std::string header = Substitute(h, vars);
      size_t colon = header.find(':');
      ASSERT_NE(colon, std::string::npos) << "bad header: " << header;
      request.headers.emplace_back(std::string(Trim(header.substr(0, colon))),
                                   std::string(Trim(header.substr(colon + 1))));
    }
    auto response = test::Fetch("127.0.0.1", port, request);
    ASSERT_TRUE(response) << response.error().message();
    ASSERT_FALSE(ex.expectations.empty()) << "no expected status";
    EXPECT_EQ(std::to_string(response->status), ex.expectations[0]) << response->body;

    std::optional<json::Value> body;
    if (!response->body.empty()) {
      auto parsed = json::Parse(response->body);
      if (parsed) body = std::move(parsed).value();
    }
    for (size_t i = 1; i < ex.expectations.size(); ++i) {
      std::string e = Substitute(ex.expectations[i], vars);
      SCOPED_TRACE(e);
      if (e.starts_with("@")) {  // @name = $.path | @name = header Name
        size_t eq = e.find('=');
        ASSERT_NE(eq, std::string::npos);
        std::string name(Trim(std::string_view(e).substr(1, eq - 1)));
        std::string source(Trim(std::string_view(e).substr(eq + 1)));
        if (source.starts_with("header ")) {
          vars[name] = std::string(response->Header(Trim(source.substr(7))));
        } else {
          ASSERT_TRUE(body) << "no JSON body";
          const json::Value* v = JsonPath(*body, source);
          ASSERT_NE(v, nullptr) << source << " not in " << response->body;
          vars[name] = ScalarText(*v);
        }
      } else if (e.starts_with("$")) {  // $.path = v | ~ sub | exists | absent | count N
        ASSERT_TRUE(body) << "no JSON body: " << response->body;
        size_t space_pos = e.find(' ');
        std::string path = e.substr(0, space_pos);
        std::string rest =
            space_pos == std::string::npos ? "" : std::string(Trim(e.substr(space_pos)));
        const json::Value* v = JsonPath(*body, path);
        if (rest == "exists") {
          EXPECT_NE(v, nullptr) << response->body;
        } else if (rest == "absent") {
          EXPECT_EQ(v, nullptr) << response->body;
        } else if (rest.starts_with("count ")) {
          ASSERT_NE(v, nullptr) << response->body;
          ASSERT_TRUE(v->is_array());
          EXPECT_EQ(std::to_string(v->as_array().size()), Trim(rest.substr(6)));
        } else if (rest.starts_with("= ")) {
          ASSERT_NE(v, nullptr) << response->body;
          EXPECT_EQ(ScalarText(*v), Unquote(rest.substr(2))) << response->body;
        } else if (rest.starts_with("!~ ")) {
          ASSERT_NE(v, nullptr) << response->body;
          EXPECT_EQ(ScalarText(*v).find(Unquote(rest.substr(3))), std::string::npos)
              << ScalarText(*v);
        } else if (rest.starts_with("~ ")) {
          ASSERT_NE(v, nullptr) << response->body;
          EXPECT_NE(ScalarText(*v).find(Unquote(rest.substr(2))), std::string::npos)
              << ScalarText(*v);
        } else {
          ADD_FAILURE() << "unknown JSON expectation";
        }
      } else if (e == "body empty") {
        EXPECT_TRUE(response->body.empty()) << response->body;
      } else if (e.starts_with("body ~ ")) {
        EXPECT_NE(response->body.find(Unquote(e.substr(7))), std::string::npos) << response->body;
      } else {  // Header: value | Header: ~sub | Header: ! (absent) | Header: * (present)
        size_t colon = e.find(':');
        ASSERT_NE(colon, std::string::npos) << "unknown expectation";
        std::string name(Trim(std::string_view(e).substr(0, colon)));
        std::string want(Trim(std::string_view(e).substr(colon + 1)));
        bool present = http::HasHeader(response->headers, name);
        std::string actual(response->Header(name));
        if (want == "!") {
          EXPECT_FALSE(present) << name << ": " << actual;
        } else if (want == "*") {
          EXPECT_TRUE(present) << name;
        } else if (want.starts_with("~")) {
          EXPECT_NE(actual.find(want.substr(1)), std::string::npos) << name << ": " << actual;
        } else {
          EXPECT_EQ(actual, want) << name;
        }
      }
    }
  }
  (*app)->Stop();
  fs::remove_all(dir);
}

std::vector<std::string> ScenarioFiles() {
  std::vector<std::string> files;
  for (const auto& entry :
       fs::recursive_directory_iterator(fs::path(FHIRSTONE_SOURCE_DIR) / "tests" / "scenarios"))
    if (entry.path().extension() == ".test") files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

INSTANTIATE_TEST_SUITE_P(
    Scenarios, ScenarioTest,
    ::testing::Combine(::testing::ValuesIn(ScenarioFiles()),
                       ::testing::Values(db::Dialect::kSqlite, db::Dialect::kPostgres)),
    [](const ::testing::TestParamInfo<std::tuple<std::string, db::Dialect>>& info) {
      fs::path root = fs::path(FHIRSTONE_SOURCE_DIR) / "tests" / "scenarios";
      std::string name = fs::relative(std::get<0>(info.param), root).replace_extension().string();
      for (char& c : name)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      return name + "_" + test::DialectName(std::get<1>(info.param));
    });

}  // namespace
}  // namespace fhirstone
