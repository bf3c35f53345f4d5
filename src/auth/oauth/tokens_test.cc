// Token revocation on one node takes effect at once and stays in effect across the reloads that
// bring other nodes' revocations in, including one whose read began before this revocation was
// written.
#include "auth/oauth/tokens.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "auth/oauth/auth_store.h"
#include "db/database.h"
#include "support/fakes.h"

namespace fhirstone::oauth {
namespace {

namespace fs = std::filesystem;

class TokensTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("fhirstone-tokens-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto db = db::Database::Open("sqlite:" + (dir_ / "auth.db").string());
    ASSERT_TRUE(db) << db.error().message();
    db_ = std::move(db).value();
    auto store = AuthStore::Open(*db_);
    ASSERT_TRUE(store) << store.error().message();
    store_ = std::move(store).value();
    auto tokens = TokenService::Create(*store_, clock_, {"http://fhir", "http://fhir"});
    ASSERT_TRUE(tokens) << tokens.error().message();
    tokens_ = std::move(tokens).value();
  }
  void TearDown() override {
    tokens_.reset();
    store_.reset();
    db_.reset();
    fs::remove_all(dir_);
  }
  void Execute(const std::string& sql) {
    auto lease = db_->Acquire();
    ASSERT_TRUE(lease);
    ASSERT_TRUE((*lease)->Execute(sql));
  }

  fs::path dir_;
  test::FakeClock clock_;
  std::unique_ptr<db::Database> db_;
  std::unique_ptr<AuthStore> store_;
  std::unique_ptr<TokenService> tokens_;
};

TEST_F(TokensTest, ARevocationSurvivesAReloadThatReadBeforeIt) {
  int64_t now = clock_.NowMicros() / 1000000;
  ASSERT_TRUE(tokens_->Revoke("jti-1", now + 3600));
  EXPECT_TRUE(tokens_->IsRevoked("jti-1"));
  // As a reload whose read of the revocations began before jti-1 was written sees them.
  Execute("DELETE FROM auth_revoked WHERE id = 'jti-1'");
  ASSERT_TRUE(tokens_->Reload());
  EXPECT_TRUE(tokens_->IsRevoked("jti-1"));
  // Another node's revocation comes in with a reload; one that expired goes.
  Execute("INSERT INTO auth_revoked (id, expires) VALUES ('jti-2', " +
          std::to_string(now + 3 * 86400) + ")");
  ASSERT_TRUE(tokens_->Revoke("jti-3", now + 1));
  Execute("DELETE FROM auth_revoked WHERE id = 'jti-3'");
  clock_.Advance(int64_t{7200} * 1000000);
  ASSERT_TRUE(tokens_->Reload());
  EXPECT_TRUE(tokens_->IsRevoked("jti-2"));
  EXPECT_FALSE(tokens_->IsRevoked("jti-3"));
  EXPECT_FALSE(tokens_->IsRevoked("jti-1"));  // expired an hour ago
}

}  // namespace
}  // namespace fhirstone::oauth
