#include "store/sql_resource_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "support/databases.h"
#include "support/fakes.h"

namespace fhirstone::store {
namespace {

class StoreTest : public ::testing::TestWithParam<db::Dialect> {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("fhirstone-store-test-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::string url;
    FHIRSTONE_ASSIGN_FRESH_DATABASE(db_, GetParam(), dir_ / "db", &url);
    auto store = OpenSqlResourceStore(*db_, clock_, ids_, nullptr, "");
    ASSERT_TRUE(store) << store.error().message();
    store_ = std::move(store).value();
  }

  static json::Value Patient(std::string_view id = {}, std::string_view family = "Doe") {
    json::Value p = json::Value::EmptyObject();
    p.Set("resourceType", "Patient");
    if (!id.empty()) p.Set("id", id);
    json::Value name = json::Value::EmptyObject();
    name.Set("family", family);
    p.Set("name", json::Array{name});
    return p;
  }

  void TearDown() override {
    store_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::filesystem::path dir_;
  test::FakeClock clock_;
  test::SequentialIdGenerator ids_;
  std::unique_ptr<db::Database> db_;
  std::unique_ptr<ResourceStore> store_;
};

TEST_P(StoreTest, CreateAssignsIdAndMetaThenReads) {
  auto created = store_->Create(Patient());
  ASSERT_TRUE(created);
  EXPECT_EQ(created->id, "id1");
  EXPECT_EQ(created->version, 1);
  EXPECT_EQ(created->body,
            R"({"resourceType":"Patient","id":"id1","meta":{"versionId":"1","lastUpdated":")" +
                FormatInstant(created->last_updated) + R"("},"name":[{"family":"Doe"}]})");
  auto read = store_->Read("Patient", "id1");
  ASSERT_TRUE(read);
  EXPECT_EQ(read->body, created->body);
  EXPECT_EQ(store_->Read("Patient", "nope").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->Read("Observation", "id1").error().code(), ErrorCode::kNotFound);
}

TEST_P(StoreTest, UpdateVersionsAndHonoursIfMatch) {
  auto first = store_->Update(Patient("p1"), std::nullopt);
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->created);
  auto second = store_->Update(Patient("p1", "Roe"), 1);
  ASSERT_TRUE(second);
  EXPECT_FALSE(second->created);
  EXPECT_EQ(second->resource.version, 2);
  auto stale = store_->Update(Patient("p1", "Stale"), 1);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code(), ErrorCode::kPreconditionFailed);
  EXPECT_EQ(store_->Update(Patient("absent"), 1).error().code(), ErrorCode::kPreconditionFailed);
  auto v1 = store_->VRead("Patient", "p1", 1);
  ASSERT_TRUE(v1);
  EXPECT_NE(v1->body.find("Doe"), std::string::npos);
  EXPECT_NE(store_->Read("Patient", "p1")->body.find("Roe"), std::string::npos);
  EXPECT_EQ(store_->VRead("Patient", "p1", 3).error().code(), ErrorCode::kNotFound);
}

TEST_P(StoreTest, DeleteIsLogicalAndResurrectable) {
  ASSERT_TRUE(store_->Update(Patient("p1"), std::nullopt));
  EXPECT_EQ(store_->Delete("Patient", "p1", 7).error().code(), ErrorCode::kPreconditionFailed);
  auto deleted = store_->Delete("Patient", "p1", std::nullopt);
  ASSERT_TRUE(deleted);
  ASSERT_TRUE(deleted->deleted);
  EXPECT_EQ(deleted->deleted->version, 2);
  EXPECT_EQ(store_->Read("Patient", "p1").error().code(), ErrorCode::kGone);
  EXPECT_EQ(store_->VRead("Patient", "p1", 2).error().code(), ErrorCode::kGone);
  EXPECT_TRUE(store_->VRead("Patient", "p1", 1));
  auto again = store_->Delete("Patient", "p1", std::nullopt);
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->deleted);
  auto back = store_->Update(Patient("p1"), std::nullopt);
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->created);
  EXPECT_EQ(back->resource.version, 3);
}

TEST_P(StoreTest, HistoryPagesNewestFirstWithFilters) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(store_->Update(Patient("p1", std::to_string(i)), {}));
  ASSERT_TRUE(store_->Create(Patient()));
  HistoryQuery q;
  q.type = "Patient";
  q.id = "p1";
  q.count = 2;
  auto page = store_->History(q);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->entries.size(), 2u);
  EXPECT_EQ(page->entries[0].version, 5);
  EXPECT_EQ(page->total, 5);
  ASSERT_TRUE(page->next);
  // A write between pages does not shift the next page.
  ASSERT_TRUE(store_->Update(Patient("p1", "later"), {}));
  q.cursor = page->next;
  auto next = store_->History(q);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->entries[0].version, 3);
  HistoryQuery all;
  auto system = store_->History(all);
  EXPECT_EQ(system->entries.size(), 7u);
  EXPECT_FALSE(system->next);
  HistoryQuery since;
  since.since = page->entries[0].last_updated;
  EXPECT_EQ(store_->History(since)->entries.size(), 3u);
  HistoryQuery at;
  at.type = "Patient";
  at.id = "p1";
  at.at = TimeRange{page->entries[1].last_updated, page->entries[1].last_updated + 1};
  auto at_page = store_->History(at);
  ASSERT_EQ(at_page->entries.size(), 1u);
  EXPECT_EQ(at_page->entries[0].version, 4);
}

TEST_P(StoreTest, ConcurrentIfMatchUpdatesNeverBothWin) {
  ASSERT_TRUE(store_->Update(Patient("p1"), std::nullopt));
  std::atomic<int> wins{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      auto r = store_->Update(Patient("p1", std::to_string(t)), 1);
      if (r) {
        ++wins;
      } else if (r.error().code() == ErrorCode::kPreconditionFailed) {
        ++refused;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wins, 1);
  EXPECT_EQ(refused, 7);
  EXPECT_EQ(store_->Read("Patient", "p1")->version, 2);
}

TEST_P(StoreTest, GroupedWritesFailAlone) {
  // Concurrent transactions share commits; a failing one rolls back only its own writes.
  std::vector<std::thread> threads;
  std::atomic<int> failed{0};
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      Status status = store_->InTransaction([&](StoreTransaction& tx) -> Status {
        auto created = tx.Update(Patient("t" + std::to_string(t)), std::nullopt);
        if (!created) return std::move(created).error();
        if (t % 2) return Error::Conflict("refused after writing");
        return Ok();
      });
      if (!status) ++failed;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed, 8);
  for (int t = 0; t < 16; ++t) {
    auto read = store_->Read("Patient", "t" + std::to_string(t));
    if (t % 2) {
      EXPECT_EQ(read.error().code(), ErrorCode::kNotFound) << t;
    } else {
      EXPECT_TRUE(read) << t;
    }
  }
  HistoryQuery all;
  EXPECT_EQ(store_->History(all)->entries.size(), 8u);
}

// An addendum runs in the transaction of the thread's next write that commits, once; a failing
// one fails the write with it.
TEST_P(StoreTest, WriteAddendaCommitWithTheWriteOrNotAtAll) {
  {
    auto lease = db_->Acquire();
    ASSERT_TRUE(lease);
    ASSERT_TRUE((*lease)->Execute("CREATE TABLE addendum_rows (n INTEGER NOT NULL)"));
  }
  auto rows = [&] {
    auto lease = db_->Acquire();
    auto count = (*lease)->Prepare("SELECT count(*) FROM addendum_rows");
    EXPECT_TRUE(count);
    auto row = (*count)->Step();
    int64_t n = row && *row ? (*count)->ColumnInt(0) : -1;
    (*count)->Reset();
    return n;
  };
  {
    WriteAddendum refused([](db::Connection&) -> Status { return Error::Conflict("refused"); });
    auto created = store_->Create(Patient("a1"));
    ASSERT_FALSE(created);
    EXPECT_EQ(created.error().code(), ErrorCode::kConflict);
    EXPECT_FALSE(refused.committed());
  }
  EXPECT_FALSE(store_->Read("Patient", "a1"));
  {
    int runs = 0;
    WriteAddendum added([&](db::Connection& conn) -> Status {
      ++runs;
      auto insert = conn.Prepare("INSERT INTO addendum_rows (n) VALUES (1)");
      if (!insert) return std::move(insert).error();
      FHIRSTONE_RETURN_IF_ERROR((*insert)->Run());
      return Ok();
    });
    ASSERT_TRUE(store_->Create(Patient("a2")));
    EXPECT_TRUE(added.committed());
    ASSERT_TRUE(store_->Create(Patient("a3")));  // committed already: not again
    EXPECT_EQ(runs, 1);
  }
  EXPECT_EQ(rows(), 1);
  // Another thread's writes do not run this thread's addendum.
  WriteAddendum mine([](db::Connection&) -> Status { return Error::Conflict("not yours"); });
  std::thread other([&] { EXPECT_TRUE(store_->Create(Patient("a4"))); });
  other.join();
  EXPECT_FALSE(mine.committed());
}

INSTANTIATE_TEST_SUITE_P(Dialects, StoreTest,
                         ::testing::Values(db::Dialect::kSqlite, db::Dialect::kPostgres),
                         [](const auto& info) { return test::DialectName(info.param); });

}  // namespace
}  // namespace fhirstone::store
