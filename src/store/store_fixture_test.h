// A fresh SQL store with the built-in search parameters, on each database dialect: the fixture
// of the store's tests (audit_test.cc, shard_test.cc).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "common/json.h"
#include "search/registry.h"
#include "store/sql_resource_store.h"
#include "support/databases.h"
#include "support/fakes.h"

namespace fhirstone::store {

class StoreFixture : public ::testing::TestWithParam<db::Dialect> {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("fhirstone-store-fixture-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::string url;
    FHIRSTONE_ASSIGN_FRESH_DATABASE(db_, GetParam(), dir_ / "db", &url);
    auto registry = search::Registry::Builtin();
    ASSERT_TRUE(registry);
    holder_ = std::make_unique<search::RegistryHolder>(
        std::shared_ptr<const search::Registry>(std::move(registry).value()));
    Open();
  }

  // (Re)opens the store on the database, as a restarted server would (with this FHIR base).
  void Open(const std::string& base = "http://example.org/fhir") {
    store_.reset();
    auto store = OpenSqlResourceStore(*db_, clock_, ids_, holder_.get(), base);
    ASSERT_TRUE(store) << store.error().message();
    store_ = std::move(store).value();
  }

  // Writes the resource `text` (JSON, with its id) as an update would.
  void Put(const std::string& text) {
    auto v = json::Parse(text);
    ASSERT_TRUE(v) << text;
    auto written = store_->Update(std::move(v).value(), std::nullopt);
    ASSERT_TRUE(written) << written.error().message();
  }

  void TearDown() override {
    store_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::filesystem::path dir_;
  test::FakeClock clock_;
  test::SequentialIdGenerator ids_;
  std::unique_ptr<search::RegistryHolder> holder_;
  std::unique_ptr<db::Database> db_;
  std::unique_ptr<ResourceStore> store_;
};

}  // namespace fhirstone::store
