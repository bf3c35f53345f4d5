// Sorted searches (_sort): every kind of key (string, token, date, number, quantity, reference,
// _id), descending, several keys, resources without a value last, ties in the order the
// resources were created, and pages (after or before a match's keys) that neither repeat nor skip a
// match while writes happen. SQLite sorts
// the matches' keys in memory and PostgreSQL in SQL: both give these orders.
#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "search/query.h"
#include "store/internal/snapshot_keys.h"
#include "store/store_fixture_test.h"

namespace fhirstone::store {
namespace {

class SortTest : public StoreFixture {
 protected:
  // The ids of every page of the search, `count` per page, following the next links; each
  // page's total is checked against `total`. The previous links from the last page are checked
  // to give the same pages back.
  std::vector<std::string> Pages(const std::string& type, search::QueryParams params, int count,
                                 int64_t total) {
    params.emplace_back("_count", std::to_string(count));
    auto q = search::ParseQuery(*holder_->Get(), {type}, params, {});
    EXPECT_TRUE(q) << q.error().message();
    std::vector<std::string> ids;
    if (!q) return ids;
    std::vector<std::string> last_page;
    std::optional<std::string> previous;
    for (int page = 0; page < 20; ++page) {
      auto found = store_->Search(*q);
      EXPECT_TRUE(found) << found.error().message();
      if (!found) break;
      EXPECT_EQ(found->total, total);
      EXPECT_LE(static_cast<int>(found->matches.size()), count);
      last_page.clear();
      for (const auto& m : found->matches) {
        ids.push_back(m.id);
        last_page.push_back(m.id);
      }
      previous = found->previous_page;
      if (!found->next_page) break;
      q->page = found->next_page;
    }
    std::vector<std::string> back = last_page;
    for (int page = 0; previous && page < 20; ++page) {
      q->page = previous;
      auto found = store_->Search(*q);
      EXPECT_TRUE(found) << found.error().message();
      if (!found) break;
      EXPECT_EQ(found->total, total);
      EXPECT_EQ(static_cast<int>(found->matches.size()), count);  // every page before is full
      std::vector<std::string> page_ids;
      for (const auto& m : found->matches) page_ids.push_back(m.id);
      back.insert(back.begin(), page_ids.begin(), page_ids.end());
      previous = found->previous_page;
    }
    if (ids.size() <= 20u * static_cast<size_t>(count)) EXPECT_EQ(back, ids) << "previous links";
    return ids;
  }

  using Ids = std::vector<std::string>;
};

TEST_P(SortTest, PatientsByStringTokenAndDateKeys) {
  // Created in this order (the order of ties). Names sort by their normalized form: "A" and "a"
  // tie, "É" sorts as "e".
  Put(R"({"resourceType":"Patient","id":"p1","name":[{"family":"b"}],"gender":"male",
          "birthDate":"1970"})");
  Put(R"({"resourceType":"Patient","id":"p2","name":[{"family":"A"}],"gender":"female",
          "birthDate":"1970-06-01"})");
  Put(R"({"resourceType":"Patient","id":"p3","name":[{"family":"Élan"}],"gender":"male",
          "birthDate":"1969-12-31"})");
  Put(R"({"resourceType":"Patient","id":"p4","name":[{"family":"a"}],"gender":"female"})");
  Put(R"({"resourceType":"Patient","id":"p5","gender":"other","birthDate":"1980-02"})");
  Put(R"({"resourceType":"Patient","id":"p6","name":[{"family":"ab"}],
          "birthDate":"1970-06-01"})");

  EXPECT_EQ(Pages("Patient", {{"_sort", "family"}}, 2, 6),
            (Ids{"p2", "p4", "p6", "p1", "p3", "p5"}));
  EXPECT_EQ(Pages("Patient", {{"_sort", "-family"}}, 4, 6),
            (Ids{"p3", "p1", "p6", "p2", "p4", "p5"}));
  // Ascending dates compare their first instant, descending ones their last: the year 1970 ends
  // after 1970-06-01.
  EXPECT_EQ(Pages("Patient", {{"_sort", "birthdate"}}, 5, 6),
            (Ids{"p3", "p1", "p2", "p6", "p5", "p4"}));
  EXPECT_EQ(Pages("Patient", {{"_sort", "-birthdate"}}, 3, 6),
            (Ids{"p5", "p1", "p2", "p6", "p3", "p4"}));
  EXPECT_EQ(Pages("Patient", {{"_sort", "gender,-birthdate"}}, 2, 6),
            (Ids{"p2", "p4", "p1", "p3", "p5", "p6"}));
  EXPECT_EQ(Pages("Patient", {{"_sort", "-gender,family"}}, 1, 6),
            (Ids{"p5", "p1", "p3", "p2", "p4", "p6"}));
  EXPECT_EQ(Pages("Patient", {{"_sort", "-_id"}}, 4, 6), (Ids{"p6", "p5", "p4", "p3", "p2", "p1"}));
  // With a criterion: only its matches are sorted and counted.
  EXPECT_EQ(Pages("Patient", {{"gender", "female,male"}, {"_sort", "-birthdate,_id"}}, 2, 4),
            (Ids{"p1", "p2", "p3", "p4"}));
}

// Sorted pages continue after the last match of the page before (its keys and row id), not at an
// offset: a match deleted, or created, between pages moves no other from one page to the next;
// previous links go back the same way.
TEST_P(SortTest, SortedPagesNeitherRepeatNorSkipWhileWritesHappen) {
  auto patient = [](int i, std::string gender = "unknown") {
    std::string birth = i % 4 == 3 ? "" : ",\"birthDate\":\"19" + std::to_string(70 + i % 3) + "\"";
    return "{\"resourceType\":\"Patient\",\"id\":\"p" + std::to_string(i) + "\",\"gender\":\"" +
           gender + "\",\"name\":[{\"family\":\"n" + std::to_string(i % 5) + "\"}]" + birth + "}";
  };
  for (int i = 0; i < 14; ++i) Put(patient(i));
  // Birth dates descending with ties broken by name, then by creation; those without one last.
  search::QueryParams sort{{"_sort", "-birthdate,name"}};
  Ids all = Pages("Patient", sort, 100, 14);
  ASSERT_EQ(all.size(), 14u);

  auto params = sort;
  params.emplace_back("_count", "3");
  auto q = search::ParseQuery(*holder_->Get(), {"Patient"}, params, {});
  ASSERT_TRUE(q) << q.error().message();
  Ids seen;
  std::vector<Ids> pages;
  for (int page = 0; page < 10; ++page) {
    auto found = store_->Search(*q);
    ASSERT_TRUE(found) << found.error().message();
    Ids ids;
    for (const auto& m : found->matches) ids.push_back(m.id);
    pages.push_back(ids);
    seen.insert(seen.end(), ids.begin(), ids.end());
    if (page == 0) {
      // Between the first pages: a match already shown and one not yet shown are deleted, a
      // match not yet shown is updated (not its keys), a new one is created.
      ASSERT_TRUE(store_->Delete("Patient", all[1], std::nullopt));
      ASSERT_TRUE(store_->Delete("Patient", all[7], std::nullopt));
      Put(patient(std::stoi(all[9].substr(1)), "other"));
      Put(patient(20));
    }
    if (!found->next_page) break;
    q->page = found->next_page;
  }
  // Every match of the first page's snapshot, in order, once, but the one deleted unseen.
  Ids expected;
  for (const auto& id : all)
    if (id != all[7]) expected.push_back(id);
  EXPECT_EQ(seen, expected);

  // Back from the last page by the previous links: the pages before it, in the current order.
  Ids now = Pages("Patient", sort, 100, 13);
  auto last = store_->Search(*q);
  ASSERT_TRUE(last);
  Ids back;
  for (const auto& m : last->matches) back.push_back(m.id);
  std::optional<std::string> previous = last->previous_page;
  for (int page = 0; previous && page < 10; ++page) {
    q->page = previous;
    auto found = store_->Search(*q);
    ASSERT_TRUE(found) << found.error().message();
    EXPECT_LE(found->matches.size(), 3u);
    Ids ids;
    for (const auto& m : found->matches) ids.push_back(m.id);
    back.insert(back.begin(), ids.begin(), ids.end());
    previous = found->previous_page;
  }
  // The new patient (after the first page's snapshot) is in neither walk.
  Ids current;
  for (const auto& id : now)
    if (id != "p20") current.push_back(id);
  EXPECT_EQ(back, current);
}

// Page tokens: a former offset page's links continue by keys (none before the first page); a
// token whose keys do not fit the sort, or name no number, is refused.
// Sorted by _lastUpdated, which every update changes: the pages after the first take each match's
// time in the first page's snapshot, so that a match updated meanwhile is neither skipped
// (descending: it would jump before the cursor) nor shown again (ascending: after it).
TEST_P(SortTest, PagesByLastUpdatedKeepTheirOrderWhileMatchesAreUpdated) {
  auto observation = [](int i, const std::string& status) {
    return "{\"resourceType\":\"Observation\",\"id\":\"o" + std::to_string(i) + "\",\"status\":\"" +
           status + "\",\"code\":{\"text\":\"x\"}}";
  };
  for (int i = 1; i <= 6; ++i) Put(observation(i, "final"));
  // Each page of the search, following the next links; `between` runs after the first page.
  auto walk = [&](const std::string& sort, const std::function<void()>& between,
                  std::optional<std::string>* previous_of_last) {
    auto q = search::ParseQuery(*holder_->Get(), {"Observation"},
                                {{"_sort", sort}, {"_count", "2"}}, {});
    EXPECT_TRUE(q) << q.error().message();
    std::vector<Ids> pages;
    for (int page = 0; q && page < 10; ++page) {
      auto found = store_->Search(*q);
      EXPECT_TRUE(found) << found.error().message();
      if (!found) break;
      Ids ids;
      for (const auto& m : found->matches) ids.push_back(m.id);
      pages.push_back(ids);
      if (page == 0) between();
      *previous_of_last = found->previous_page;
      if (!found->next_page) break;
      q->page = found->next_page;
    }
    return pages;
  };
  std::optional<std::string> previous;
  // Newest first: o2 (not shown yet) and o6 (shown) are updated after the first page.
  EXPECT_EQ(walk(
                "-_lastUpdated",
                [&] {
                  Put(observation(2, "amended"));
                  Put(observation(6, "amended"));
                },
                &previous),
            (std::vector<Ids>{{"o6", "o5"}, {"o4", "o3"}, {"o2", "o1"}}));
  // Back from the last page: the pages of the same snapshot.
  auto q = search::ParseQuery(*holder_->Get(), {"Observation"},
                              {{"_sort", "-_lastUpdated"}, {"_count", "2"}}, {});
  ASSERT_TRUE(q);
  q->page = previous;
  auto back = store_->Search(*q);
  ASSERT_TRUE(back) << back.error().message();
  ASSERT_EQ(back->matches.size(), 2u);
  EXPECT_EQ(back->matches[0].id, "o4");
  EXPECT_EQ(back->matches[1].id, "o3");
  // A new search sees the updates: o6 then o2 are the newest.
  EXPECT_EQ(walk(
                "-_lastUpdated", [] {}, &previous),
            (std::vector<Ids>{{"o6", "o2"}, {"o5", "o4"}, {"o3", "o1"}}));
  // Oldest first: o1 (shown) and o4 (not shown yet) are updated after the first page.
  EXPECT_EQ(walk(
                "_lastUpdated",
                [&] {
                  Put(observation(1, "final"));
                  Put(observation(4, "final"));
                },
                &previous),
            (std::vector<Ids>{{"o1", "o3"}, {"o4", "o5"}, {"o2", "o6"}}));
}

// Sorted by keys that updates change (string, token, date, quantity, reference; several keys;
// either direction): the pages after the first take each match's keys in the first page's
// snapshot, the keys of its version then, so that a match updated meanwhile is neither shown again
// (its key moved past the cursor) nor skipped (moved before it). A key's values gone, or several
// of them (the least or greatest counts), are taken as they were too; the previous links from the
// last page give the same pages back.
TEST_P(SortTest, PagesKeepTheFirstPagesOrderWhileSortKeysChange) {
  // Resource i with keys of rank r: code c<r>, value r, date in year 1900 + r, subject p<r>,
  // family n<r> (and a second name that sorts after it), birth year 1900 + r; rank < 0: none.
  auto observation = [](int i, int r) {
    std::string rank = std::to_string(r + 10);
    std::string keys = r < 0 ? ""
                             : R"(,"code":{"coding":[{"system":"urn:s","code":"c)" + rank +
                                   R"("}]},"valueQuantity":{"value":)" + rank +
                                   R"(},"effectiveDateTime":"19)" + rank +
                                   R"(","subject":{"reference":"Patient/p)" + rank + "\"}";
    return R"({"resourceType":"Observation","id":"o)" + std::to_string(i) +
           R"(","status":"final")" + keys + "}";
  };
  auto patient = [](int i, int r) {
    std::string rank = std::to_string(r + 10);
    std::string keys = r < 0 ? ""
                             : R"(,"name":[{"family":"n)" + rank + R"("},{"family":"z)" + rank +
                                   R"("}],"birthDate":"19)" + rank + "\"";
    return R"({"resourceType":"Patient","id":"p)" + std::to_string(i) + "\"" + keys + "}";
  };
  const int n = 10;
  for (int i = 0; i < n; ++i) {
    Put(observation(i, i));
    Put(patient(i, i));
  }
  struct Case {
    std::string type, sort;
    search::QueryParams criteria = {};
  };
  for (const Case& c : std::vector<Case>{{"Observation", "code"},
                                         {"Observation", "-value-quantity"},
                                         {"Observation", "date"},
                                         {"Observation", "-subject"},
                                         {"Observation", "status,-date"},
                                         {"Observation", "-date", {{"status", "final"}}},
                                         {"Patient", "family"},
                                         {"Patient", "-family"},
                                         {"Patient", "-birthdate,_id"}}) {
    SCOPED_TRACE(c.type + "?_sort=" + c.sort);
    auto make = c.type == "Patient" ? std::function<std::string(int, int)>(patient)
                                    : std::function<std::string(int, int)>(observation);
    for (int i = 0; i < n; ++i) Put(make(i, i));  // the keys of rank i again
    const bool descending = c.sort.find('-') != std::string::npos;
    search::QueryParams sorted = c.criteria;
    sorted.emplace_back("_sort", c.sort);
    Ids before = Pages(c.type, sorted, n, n);
    ASSERT_EQ(before.size(), static_cast<size_t>(n));

    search::QueryParams paged = sorted;
    paged.emplace_back("_count", "3");
    auto q = search::ParseQuery(*holder_->Get(), {c.type}, paged, {});
    ASSERT_TRUE(q) << q.error().message();
    Ids seen;
    std::optional<std::string> previous;
    Ids last;
    for (int page = 0; page < 10; ++page) {
      auto found = store_->Search(*q);
      ASSERT_TRUE(found) << found.error().message();
      EXPECT_EQ(found->total, n);
      last.clear();
      for (const auto& m : found->matches) {
        seen.push_back(m.id);
        last.push_back(m.id);
      }
      if (page == 0) {
        // A match shown moves to the end of the order, one not shown yet to its start, another
        // one loses its keys, a fourth is updated but not its keys.
        auto rank_of = [&](const std::string& id) { return std::stoi(id.substr(1)); };
        Put(make(rank_of(seen[1]), descending ? -3 : 90));
        Put(make(rank_of(before[6]), descending ? 90 : -3));
        Put(make(rank_of(before[4]), -1));
        Put(make(rank_of(before[8]), rank_of(before[8])));
      }
      previous = found->previous_page;
      if (!found->next_page) break;
      q->page = found->next_page;
    }
    EXPECT_EQ(seen, before);
    // Back from the last page by the previous links: the same pages.
    Ids back = last;
    for (int page = 0; previous && page < 10; ++page) {
      q->page = previous;
      auto found = store_->Search(*q);
      ASSERT_TRUE(found) << found.error().message();
      Ids ids;
      for (const auto& m : found->matches) ids.push_back(m.id);
      back.insert(back.begin(), ids.begin(), ids.end());
      previous = found->previous_page;
    }
    EXPECT_EQ(back, before);
    // A new search takes the keys as they are now.
    EXPECT_NE(Pages(c.type, sorted, n, n), before);
  }
}

// A page link of a search whose matches' keys changed in more resources than the bound since its
// first page is gone (410), not answered in an order it can no longer keep. Updates of resources
// that are not matches do not count.
TEST_P(SortTest, PagesOfASearchWhoseKeysChangedPastTheBoundAreGone) {
  auto patient = [](int i, const std::string& family, const std::string& gender) {
    return R"({"resourceType":"Patient","id":"p)" + std::to_string(i) + R"(","gender":")" + gender +
           R"(","name":[{"family":")" + family + "\"}]}";
  };
  const int n = static_cast<int>(internal::kMaxKeysChangedSinceSnapshot) + 1;
  for (int i = 0; i < n; ++i) Put(patient(i, "a" + std::to_string(i), "female"));
  for (int i = n; i < n + 8; ++i) Put(patient(i, "a" + std::to_string(i), "male"));
  auto second_page = [&](search::QueryParams params) {
    params.emplace_back("_sort", "family");
    params.emplace_back("_count", "5");
    auto q = search::ParseQuery(*holder_->Get(), {"Patient"}, params, {});
    EXPECT_TRUE(q);
    auto first = store_->Search(*q);
    EXPECT_TRUE(first && first->next_page);
    q->page = first->next_page;
    return *q;
  };
  search::SearchQuery all = second_page({});
  search::SearchQuery men = second_page({{"gender", "male"}});
  for (int i = 0; i < n - 1; ++i) Put(patient(i, "b" + std::to_string(i), "female"));
  auto at_bound = store_->Search(all);
  ASSERT_TRUE(at_bound) << at_bound.error().message();
  Put(patient(n - 1, "b", "female"));
  auto past = store_->Search(all);
  ASSERT_FALSE(past);
  EXPECT_EQ(past.error().code(), ErrorCode::kGone) << past.error().message();
  auto other = store_->Search(men);  // no match of its own changed
  ASSERT_TRUE(other) << other.error().message();
  ASSERT_EQ(other->matches.size(), 3u);
  EXPECT_EQ(other->matches[0].id, "p" + std::to_string(n + 5));
}

// A text key longer than a link carries (256 bytes): the link has its start, the next page reads
// the rest from the cursor's row; links stay short and pages neither repeat nor skip.
TEST_P(SortTest, LongTextKeysKeepLinksShort) {
  const std::string stem(600, 'q');
  auto patient = [](const std::string& id, const std::string& family) {
    return R"({"resourceType":"Patient","id":")" + id + R"(","name":[{"family":")" + family +
           "\"}]}";
  };
  Put(patient("p1", stem + "c"));
  Put(patient("p2", stem + "a"));
  Put(patient("p3", "short"));
  Put(patient("p4", stem + "b"));
  Put(patient("p5", stem));
  EXPECT_EQ(Pages("Patient", {{"_sort", "family"}}, 1, 5), (Ids{"p5", "p2", "p4", "p1", "p3"}));
  EXPECT_EQ(Pages("Patient", {{"_sort", "-family,_id"}}, 2, 5),
            (Ids{"p3", "p1", "p4", "p2", "p5"}));
  auto q =
      search::ParseQuery(*holder_->Get(), {"Patient"}, {{"_sort", "family"}, {"_count", "1"}}, {});
  ASSERT_TRUE(q);
  auto first = store_->Search(*q);
  ASSERT_TRUE(first && first->next_page);
  EXPECT_LT(first->next_page->size(), 600u) << *first->next_page;
  // The cursor's row renamed before the next page: its link's part of the key stands in.
  Put(patient("p5", "renamed"));
  q->page = first->next_page;
  auto second = store_->Search(*q);
  ASSERT_TRUE(second) << second.error().message();
  ASSERT_EQ(second->matches.size(), 1u);
  EXPECT_EQ(second->matches[0].id, "p2");
}

TEST_P(SortTest, PageTokensOfFormerOffsetsAndTamperedKeys) {
  for (int i = 0; i < 5; ++i)
    Put(R"({"resourceType":"Observation","id":"o)" + std::to_string(i) +
        R"(","status":"final","code":{"text":"x"},"valueQuantity":{"value":)" +
        std::to_string(10 - i) + "}}");
  auto q = search::ParseQuery(*holder_->Get(), {"Observation"},
                              {{"_sort", "value-quantity"}, {"_count", "2"}}, {});
  ASSERT_TRUE(q) << q.error().message();
  q->page = "o0.s1000000";
  auto first = store_->Search(*q);
  ASSERT_TRUE(first) << first.error().message();
  ASSERT_EQ(first->matches.size(), 2u);
  EXPECT_EQ(first->matches[0].id, "o4");
  EXPECT_FALSE(first->previous_page);
  ASSERT_TRUE(first->next_page);
  EXPECT_EQ(first->next_page->front(), 'k');
  q->page = "o2.s1000000";
  auto second = store_->Search(*q);
  ASSERT_TRUE(second) << second.error().message();
  ASSERT_EQ(second->matches.size(), 2u);
  EXPECT_EQ(second->matches[0].id, "o2");
  EXPECT_TRUE(second->previous_page);
  for (const char* bad : {"kr7ff8000000000000~1.s1000000",   // NaN
                          "o10001.s1000000",                 // an offset past the bound
                          "kr4024000000000000~1.s1000000h",  // a history entry without digits
                          "kr4024000000000000~1.s1000000h-1",
                          "ki5~1.s1000000",                    // an integer for a number
                          "kr4024000000000000~r0~1.s1000000",  // two keys for one
                          "k~1.s1000000", "kzz~1.s1000000", "k1.s1000000"}) {
    q->page = bad;
    EXPECT_FALSE(store_->Search(*q)) << bad;
  }
  q->page = "kr4024000000000000~1000000.s1000000";  // after 10.0 and a later row id: nothing
  auto after = store_->Search(*q);
  ASSERT_TRUE(after) << after.error().message();
  EXPECT_TRUE(after->matches.empty());
}

// A decimal past the range of a double (valid JSON and FHIR) is indexed as an infinity: pages
// sorted on it link to the next and back like any other.
TEST_P(SortTest, InfiniteValuesPageLikeOthers) {
  for (const auto& [id, value] : std::vector<std::pair<std::string, std::string>>{
           {"o1", "1e400"}, {"o2", "-1e400"}, {"o3", "5"}, {"o4", "1e400"}, {"o5", "-2"}})
    Put(R"({"resourceType":"Observation","id":")" + id +
        R"(","status":"final","code":{"text":"x"},"valueQuantity":{"value":)" + value + "}}");
  EXPECT_EQ(Pages("Observation", {{"_sort", "value-quantity"}}, 2, 5),
            (Ids{"o2", "o5", "o3", "o1", "o4"}));
  EXPECT_EQ(Pages("Observation", {{"_sort", "-value-quantity"}}, 1, 5),
            (Ids{"o1", "o4", "o3", "o5", "o2"}));
}

TEST_P(SortTest, ObservationsByQuantityNumberAndReferenceKeys) {
  Put(R"({"resourceType":"Patient","id":"pa"})");
  Put(R"({"resourceType":"Patient","id":"pb"})");
  auto observation = [&](const std::string& id, const std::string& subject,
                         const std::string& value) {
    Put(R"({"resourceType":"Observation","id":")" + id +
        R"(","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/)" + subject +
        "\"}" + (value.empty() ? "" : R"(,"valueQuantity":{"value":)" + value + "}") + "}");
  };
  observation("o1", "pb", "2.5");
  observation("o2", "pa", "-1");
  observation("o3", "pb", "");
  observation("o4", "pa", "2.5");
  observation("o5", "pb", "10");
  observation("o6", "pa", "0.125");
  EXPECT_EQ(Pages("Observation", {{"_sort", "value-quantity"}}, 2, 6),
            (Ids{"o2", "o6", "o1", "o4", "o5", "o3"}));
  EXPECT_EQ(Pages("Observation", {{"_sort", "-value-quantity"}}, 4, 6),
            (Ids{"o5", "o1", "o4", "o6", "o2", "o3"}));
  EXPECT_EQ(Pages("Observation", {{"_sort", "subject,-value-quantity"}}, 3, 6),
            (Ids{"o4", "o6", "o2", "o5", "o1", "o3"}));

  auto risk = [&](const std::string& id, const std::string& probability) {
    Put(R"({"resourceType":"RiskAssessment","id":")" + id +
        R"(","status":"final","subject":{"reference":"Patient/pa"})" +
        (probability.empty() ? ""
                             : R"(,"prediction":[{"probabilityDecimal":)" + probability + "}]") +
        "}");
  };
  risk("r1", "0.5");
  risk("r2", "");
  risk("r3", "0.25");
  risk("r4", "0.5");
  risk("r5", "0.75");
  EXPECT_EQ(Pages("RiskAssessment", {{"_sort", "probability"}}, 2, 5),
            (Ids{"r3", "r1", "r4", "r5", "r2"}));
  EXPECT_EQ(Pages("RiskAssessment", {{"_sort", "-probability"}}, 2, 5),
            (Ids{"r5", "r1", "r4", "r3", "r2"}));
}

// A patient's sorted page driven by a token criterion in the patient's shard (on SQLite read
// from the token rows alone, no resource row per candidate): a resource whose token rows repeat
// the code counts once, a deleted one and another patient's are not matches, and a resource
// created after the first page is on none of the pages.
TEST_P(SortTest, PatientPagesDrivenByATokenInTheShard) {
  Put(R"({"resourceType":"Patient","id":"p1"})");
  Put(R"({"resourceType":"Patient","id":"p2"})");
  auto observation = [&](const std::string& id, const std::string& patient,
                         const std::string& categories, const std::string& date) {
    Put(R"({"resourceType":"Observation","id":")" + id +
        R"(","status":"final","category":[{"coding":[)" + categories +
        R"(]}],"code":{"text":"x"},"subject":{"reference":"Patient/)" + patient +
        R"("},"effectiveDateTime":")" + date + "\"}");
  };
  const std::string vital =
      R"({"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"})";
  const std::string vital_elsewhere = R"({"system":"urn:other","code":"vital-signs"})";
  const std::string lab =
      R"({"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"})";
  observation("o1", "p1", vital, "2020-01-01");
  observation("o2", "p1", vital + "," + vital_elsewhere, "2021-01-01");  // two rows, one match
  observation("o3", "p1", lab, "2022-01-01");
  observation("o4", "p2", vital, "2023-01-01");
  observation("o5", "p1", vital, "2019-06-01");
  observation("o6", "p1", vital, "2024-01-01");
  ASSERT_TRUE(store_->Delete("Observation", "o6", std::nullopt));
  observation("o7", "p1", vital, "2018-01-01");

  search::QueryParams params{
      {"patient", "p1"}, {"category", "vital-signs"}, {"_sort", "-date"}, {"_count", "2"}};
  auto q = search::ParseQuery(*holder_->Get(), {"Observation"}, params, {});
  ASSERT_TRUE(q) << q.error().message();
  if (db_->dialect() == db::Dialect::kSqlite) {
    auto plan = store_->ExplainSearch(*q);
    ASSERT_TRUE(plan) << plan.error().message();
    EXPECT_NE(plan->find("FROM (SELECT DISTINCT rid AS rowid FROM idx_token"), std::string::npos)
        << *plan;
  }
  std::vector<std::string> ids;
  for (int page = 0; page < 5; ++page) {
    auto found = store_->Search(*q);
    ASSERT_TRUE(found) << found.error().message();
    EXPECT_EQ(found->total, 4);
    for (const auto& m : found->matches) ids.push_back(m.id);
    if (page == 0) observation("o8", "p1", vital, "2025-01-01");  // after the pages' snapshot
    if (!found->next_page) break;
    q->page = found->next_page;
  }
  EXPECT_EQ(ids, (Ids{"o2", "o1", "o5", "o7"}));
  // With a date criterion on the sort key's parameter (on SQLite: the token rows, then their
  // date rows joined once for criterion and key).
  EXPECT_EQ(
      Pages(
          "Observation",
          {{"patient", "p1"}, {"category", "vital-signs"}, {"date", "ge2019"}, {"_sort", "-date"}},
          2, 4),
      (Ids{"o8", "o2", "o1", "o5"}));
  EXPECT_EQ(
      Pages("Observation",
            {{"patient", "p1"}, {"category", "vital-signs"}, {"date", "lt2020"}, {"_sort", "date"}},
            1, 2),
      (Ids{"o7", "o5"}));
  // Two codes (o2 has the first twice): each match once.
  EXPECT_EQ(Pages("Observation",
                  {{"patient", "p1"},
                   {"category", "vital-signs,laboratory"},
                   {"date", "ge2019"},
                   {"_sort", "-date"}},
                  2, 5),
            (Ids{"o8", "o3", "o2", "o1", "o5"}));
  if (db_->dialect() == db::Dialect::kSqlite) {
    auto folded = search::ParseQuery(
        *holder_->Get(), {"Observation"},
        {{"patient", "p1"}, {"category", "vital-signs"}, {"date", "ge2019"}, {"_sort", "-date"}},
        {});
    ASSERT_TRUE(folded);
    auto plan = store_->ExplainSearch(*folded);
    ASSERT_TRUE(plan) << plan.error().message();
    EXPECT_NE(plan->find("FROM (SELECT rid AS rowid FROM idx_token"), std::string::npos) << *plan;
    EXPECT_NE(plan->find("CROSS JOIN idx_date d"), std::string::npos) << *plan;
    // Several codes: a resource may come once per code, apart: its token rows' distinct row ids.
    auto codes = search::ParseQuery(*holder_->Get(), {"Observation"},
                                    {{"patient", "p1"},
                                     {"category", "vital-signs,laboratory"},
                                     {"date", "ge2019"},
                                     {"_sort", "-date"}},
                                    {});
    ASSERT_TRUE(codes);
    plan = store_->ExplainSearch(*codes);
    ASSERT_TRUE(plan) << plan.error().message();
    EXPECT_NE(plan->find("FROM (SELECT DISTINCT rid AS rowid FROM idx_token"), std::string::npos)
        << *plan;
  }
  // A key of the resource row itself (_id): read from the resource rows.
  EXPECT_EQ(Pages("Observation",
                  {{"patient", "p1"}, {"category", "vital-signs"}, {"_sort", "-_id"}}, 3, 5),
            (Ids{"o8", "o7", "o5", "o2", "o1"}));
}

// A sort on a date parameter that a criterion also tests: a resource matches when one of its
// dates does, and sorts by all its dates (the latest end descending, the earliest start
// ascending), the matching one or not. (SQLite reads both from one join on the date rows.)
TEST_P(SortTest, DateCriterionAndSortKeyOnOneParameter) {
  Put(R"({"resourceType":"Patient","id":"p1"})");
  auto goal = [&](const std::string& id, const std::vector<std::string>& due) {
    std::string targets;
    for (const auto& d : due)
      targets += std::string(targets.empty() ? "" : ",") + R"({"dueDate":")" + d + "\"}";
    Put(R"({"resourceType":"Goal","id":")" + id +
        R"(","lifecycleStatus":"active","description":{"text":"x"},)" +
        R"("subject":{"reference":"Patient/p1"})" +
        (targets.empty() ? "" : R"(,"target":[)" + targets + "]") + "}");
  };
  goal("g1", {"2019-01-01", "2025-01-01"});
  goal("g2", {"2021-06-01"});
  goal("g3", {"2018-03-01"});
  goal("g4", {});
  goal("g5", {"2022-01-01"});
  // Alone, the date criterion drives; with the patient's, the patient drives and the date
  // criterion filters (on SQLite: folded into the key's join).
  for (bool with_patient : {false, true}) {
    auto params = [&](search::QueryParams p) {
      if (with_patient) p.emplace_back("patient", "p1");
      return p;
    };
    EXPECT_EQ(Pages("Goal", params({{"target-date", "lt2020"}, {"_sort", "-target-date"}}), 1, 2),
              (Ids{"g1", "g3"}));
    EXPECT_EQ(Pages("Goal", params({{"target-date", "lt2020"}, {"_sort", "target-date"}}), 5, 2),
              (Ids{"g3", "g1"}));
    EXPECT_EQ(Pages("Goal", params({{"target-date", "ge2021"}, {"_sort", "target-date"}}), 2, 3),
              (Ids{"g1", "g2", "g5"}));
    EXPECT_EQ(Pages("Goal", params({{"target-date", "ge2021"}, {"_sort", "-target-date"}}), 2, 3),
              (Ids{"g1", "g5", "g2"}));
  }
  if (db_->dialect() == db::Dialect::kSqlite) {
    auto q = search::ParseQuery(
        *holder_->Get(), {"Goal"},
        {{"patient", "p1"}, {"target-date", "lt2020"}, {"_sort", "target-date"}}, {});
    ASSERT_TRUE(q);
    auto plan = store_->ExplainSearch(*q);
    ASSERT_TRUE(plan) << plan.error().message();
    EXPECT_NE(plan->find("CROSS JOIN idx_date d"), std::string::npos) << *plan;
  }
  EXPECT_EQ(Pages("Goal",
                  {{"patient", "p1"},
                   {"target-date", "ge2018-06,lt2018-04"},
                   {"target-date", "le2022"},
                   {"_sort", "-target-date"}},
                  2, 4),
            (Ids{"g1", "g5", "g2", "g3"}));
}

// Many matches and small pages: the folded date key keeps only the first matches in the order
// (those past twice what a page needs are dropped as they come), ties by creation order, across
// pages by offset; checked against the order computed here. On SQLite the candidates of one
// category are merged with the patient's date rows when they are dense among them (laboratory,
// two in three), the join reading the rest when the rows outrun them (vital-signs, one in
// three), and joined alone when they are sparse (survey, one in ten).
TEST_P(SortTest, ManyDatedMatchesInSmallPages) {
  Put(R"({"resourceType":"Patient","id":"p1"})");
  struct Made {
    std::string id;
    std::string category;
    int day;  // days into 2010 (the date), or -1 for 2005 (not matched by ge2010)
  };
  std::vector<Made> made;
  for (int i = 0; i < 230; ++i) {
    // Days scattered (7919 is prime to 211): some repeat, so ties are ordered by creation.
    int day = i % 23 == 1 ? -1 : (i * 7919) % 211;
    std::string category = i % 10 == 0 ? "survey" : i % 3 == 0 ? "vital-signs" : "laboratory";
    std::string id = "m" + std::to_string(i);
    std::string date =
        day < 0
            ? "2005-01-01"
            : "2010-" + std::string(day / 28 + 1 < 10 ? "0" : "") + std::to_string(day / 28 + 1) +
                  "-" + std::string(day % 28 + 1 < 10 ? "0" : "") + std::to_string(day % 28 + 1);
    Put(R"({"resourceType":"Observation","id":")" + id +
        R"(","status":"final","category":[{"coding":[{"code":")" + category +
        R"("}]}],"code":{"text":"x"},"subject":{"reference":"Patient/p1"},)" +
        R"("effectiveDateTime":")" + date + "\"}");
    made.push_back({id, category, day});
  }
  for (std::string category : {"laboratory", "vital-signs", "survey"}) {
    for (bool descending : {true, false}) {
      std::vector<Made> expected;
      for (const auto& m : made)
        if (m.day >= 0 && m.category == category) expected.push_back(m);
      std::stable_sort(expected.begin(), expected.end(), [&](const Made& a, const Made& b) {
        return descending ? a.day > b.day : a.day < b.day;
      });
      Ids ids;
      for (const auto& m : expected) ids.push_back(m.id);
      for (int count : {12, 50}) {  // at most 20 pages (Pages)
        EXPECT_EQ(Pages("Observation",
                        {{"patient", "p1"},
                         {"category", category},
                         {"date", "ge2010"},
                         {"_sort", descending ? "-date" : "date"}},
                        count, static_cast<int64_t>(ids.size())),
                  ids)
            << category << ", descending " << descending << ", _count " << count;
      }
    }
  }
  if (db_->dialect() == db::Dialect::kSqlite) {
    auto q = search::ParseQuery(
        *holder_->Get(), {"Observation"},
        {{"patient", "p1"}, {"category", "laboratory"}, {"date", "ge2010"}, {"_sort", "-date"}},
        {});
    ASSERT_TRUE(q);
    auto plan = store_->ExplainSearch(*q);
    ASSERT_TRUE(plan) << plan.error().message();
    EXPECT_NE(plan->find("merged by row id with SELECT d.rid, d.high"), std::string::npos) << *plan;
  }
}

// A union parameter (combo-code: code and component-code) driving in the shard: a resource
// with the code in both comes once, whether its candidates are merged or joined.
TEST_P(SortTest, UnionCodeWithTheSortedDateCountsEachMatchOnce) {
  Put(R"({"resourceType":"Patient","id":"p1"})");
  auto observation = [&](const std::string& id, bool component, const std::string& date,
                         const std::string& code = "c") {
    std::string components =
        component ? R"(,"component":[{"code":{"coding":[{"code":"c"}]},"valueString":"v"}])" : "";
    Put(R"({"resourceType":"Observation","id":")" + id +
        R"(","status":"final","code":{"coding":[{"code":")" + code +
        R"("}]},"subject":{"reference":"Patient/p1"},"effectiveDateTime":")" + date + "\"" +
        components + "}");
  };
  observation("u1", true, "2021-01-01");
  // Others between: the matches are sparse among the patient's rows (joined, not merged).
  for (int i = 0; i < 60; ++i) observation("f" + std::to_string(i), false, "2020-06-01", "other");
  observation("u2", false, "2023-01-01");
  observation("u3", true, "2022-01-01");
  for (int count : {1, 2, 5}) {
    EXPECT_EQ(
        Pages("Observation",
              {{"patient", "p1"}, {"combo-code", "c"}, {"date", "ge2020"}, {"_sort", "-date"}},
              count, 3),
        (Ids{"u2", "u3", "u1"}))
        << count;
  }
}

// _revinclude: each round's resources come in the order stored, and past the 1000 included the
// first stored are kept, whichever of the matches they refer to.
TEST_P(SortTest, RevincludedInTheOrderStoredAndCutAtTheFirstThousand) {
  Put(R"({"resourceType":"Patient","id":"p1"})");
  Put(R"({"resourceType":"Patient","id":"p2"})");
  auto observation = [](const std::string& id, const std::string& patient) {
    return R"({"resourceType":"Observation","id":")" + id +
           R"(","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/)" + patient +
           R"("}})";
  };
  Put(observation("b-1", "p2"));
  Put(observation("a-1", "p1"));
  Put(observation("b-2", "p2"));
  auto included = [&](search::QueryParams params) {
    auto q = search::ParseQuery(*holder_->Get(), {"Patient"}, params, {});
    EXPECT_TRUE(q) << q.error().message();
    Ids ids;
    if (!q) return ids;
    auto found = store_->Search(*q);
    EXPECT_TRUE(found) << found.error().message();
    if (found)
      for (const auto& v : found->included) ids.push_back(v.id);
    return ids;
  };
  const search::QueryParams both = {{"_id", "p1,p2"}, {"_revinclude", "Observation:subject"}};
  EXPECT_EQ(included(both), (Ids{"b-1", "a-1", "b-2"}));
  // 600 more of p2's, then 600 of p1's: the 1000 kept are the first stored (p1's rows come first
  // in the index, by id).
  for (int i = 0; i < 600; ++i) Put(observation("b-x" + std::to_string(i), "p2"));
  for (int i = 0; i < 600; ++i) Put(observation("a-x" + std::to_string(i), "p1"));
  Ids kept = included(both);
  ASSERT_EQ(kept.size(), 1000u);
  EXPECT_EQ(kept[0], "b-1");
  EXPECT_EQ(kept[3], "b-x0");
  EXPECT_EQ(kept[602], "b-x599");
  EXPECT_EQ(kept[603], "a-x0");
  EXPECT_EQ(kept[999], "a-x396");
}

// _revinclude over three matches (a number of ids that is no power of two): a resource that refers
// to two of them comes once, one that refers to a patient by identifier only (no id) does not come,
// nor one that refers to a patient not matched.
TEST_P(SortTest, RevincludedOnceWhateverTheNumberOfMatchesItRefersTo) {
  for (const char* id : {"p1", "p2", "p3", "p4"})
    Put(R"({"resourceType":"Patient","id":")" + std::string(id) + R"("})");
  auto observation = [](const std::string& id, const std::string& performers) {
    return R"({"resourceType":"Observation","id":")" + id +
           R"(","status":"final","code":{"text":"x"},"performer":[)" + performers + "]}";
  };
  Put(observation("o-13", R"({"reference":"Patient/p1"},{"reference":"Patient/p3"})"));
  Put(observation("o-none", R"({"type":"Patient","identifier":{"value":"p2"}})"));
  Put(observation("o-2", R"({"reference":"Patient/p2"})"));
  Put(observation("o-4", R"({"reference":"Patient/p4"})"));
  Put(observation("o-3", R"({"reference":"Patient/p3"},{"reference":"Patient/p3"})"));
  auto q = search::ParseQuery(*holder_->Get(), {"Patient"},
                              {{"_id", "p1,p2,p3"}, {"_revinclude", "Observation:performer"}}, {});
  ASSERT_TRUE(q) << q.error().message();
  auto found = store_->Search(*q);
  ASSERT_TRUE(found) << found.error().message();
  Ids ids;
  for (const auto& v : found->included) ids.push_back(v.id);
  EXPECT_EQ(ids, (Ids{"o-13", "o-2", "o-3"}));
}

INSTANTIATE_TEST_SUITE_P(Dialects, SortTest,
                         ::testing::Values(db::Dialect::kSqlite, db::Dialect::kPostgres),
                         [](const auto& info) { return test::DialectName(info.param); });

}  // namespace
}  // namespace fhirstone::store
