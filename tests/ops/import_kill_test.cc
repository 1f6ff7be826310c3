// kill -9 in the middle of an import, then the same import again: it
// resumes after the durable checkpoint and ends with exactly the store a
// single uninterrupted import produces. Also the metrics registry.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "services/common/metrics.h"
#include "services/ops/importer.h"
#include "tests/ops/ops_test_util.h"

namespace ssc::ops {
namespace {

const common::Caller kAdmin{"admin-01", common::Role::kAdmin, ""};
constexpr int kPersons = 60;
constexpr size_t kBatch = 5;
const char kHeader[] =
    "id_number,name,region_code,application_id,state,bank_code,bank_account,"
    "card_number,identification_code,valid_from,applied_at,sent_at,"
    "produced_at,issued_at,activated_at";

std::vector<std::string> Lines() {
  std::vector<std::string> out;
  for (int i = 0; i < kPersons; ++i) {
    const std::string id = testing::MakeId(
        "510524", absl::StrFormat("19%02d0101", 40 + i % 50), i / 50);
    out.push_back(absl::StrCat(
        id, ",张", i, ",510524100,A510524", absl::StrFormat("%09d", i + 1),
        ",ACTIVE,ABC,62284800", absl::StrFormat("%010d", i), ",B",
        absl::StrFormat("%08d", i), ",510524D156000005",
        absl::StrFormat("%016X", i),
        ",2019-03-20,2019-03-01,2019-03-02,2019-03-20,2019-04-01,2019-04-02"));
  }
  return out;
}

// Imports the lines after the checkpoint; calls `on_batch` after each
// committed batch.
ImportTotals ImportAll(testing::TestStore& store,
                       const std::function<void()>& on_batch) {
  ImportOptions o;
  o.batch_rows = kBatch;
  Importer importer(store.ctx, &store.regions, "510524",
                    store.cards->observers(), o);
  auto session = importer.Begin(kAdmin, "kill", v1::IMPORT_FORMAT_CSV, kHeader);
  EXPECT_TRUE(session.ok()) << session.status();
  std::vector<std::string> lines = Lines();
  std::vector<BatchResult> out;
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_TRUE((*session)->Add(i + 2, lines[i], &out).ok());
    for (size_t k = 0; k < out.size(); ++k) on_batch();
    out.clear();
  }
  EXPECT_TRUE((*session)->Finish(&out).ok());
  return out.back().totals;
}

std::vector<std::string> AllEvents(storage::Engine& e) {
  auto events = e.ReadEvents(1, 100000);
  EXPECT_TRUE(events.ok());
  std::vector<std::string> out;
  for (const storage::StoredEvent& ev : *events) {
    out.push_back(absl::StrCat(ev.entity_type, "|", ev.entity_id, "|",
                               absl::FormatTime(ev.time), "|", ev.type, "|",
                               ev.payload));
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The child: imports with a synced store and reports every committed batch
// on the pipe; the parent kills it with SIGKILL.
TEST(ImportKill9Child, Run) {
  const char* dir = getenv("SSC_IMPORT_KILL_DIR");
  const char* fd_env = getenv("SSC_IMPORT_KILL_FD");
  if (dir == nullptr || fd_env == nullptr) GTEST_SKIP() << "parent only";
  const int fd = std::atoi(fd_env);
  storage::ManualClock clock(absl::FromUnixSeconds(1767225600));
  testing::TestStore store(absl::StrCat(dir, "/db"), &clock, /*sync=*/true);
  ImportAll(store, [fd] { (void)!::write(fd, "b", 1); });
}

TEST(ImportKill9, ResumesAfterTheCheckpointWithTheSameResult) {
  testing::TempDir dir;
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(pipefd[0]);
    setenv("SSC_IMPORT_KILL_DIR", dir.path().c_str(), 1);
    setenv("SSC_IMPORT_KILL_FD", std::to_string(pipefd[1]).c_str(), 1);
    execl("/proc/self/exe", "ops_test", "--gtest_filter=ImportKill9Child.Run",
          static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(pipefd[1]);
  // Kill it once three batches are durable (it is working on the fourth).
  char c;
  int batches = 0;
  while (batches < 3 && ::read(pipefd[0], &c, 1) == 1) ++batches;
  ASSERT_EQ(batches, 3);
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(pipefd[0]);
  ASSERT_TRUE(WIFSIGNALED(status));

  storage::ManualClock clock(absl::FromUnixSeconds(1767225600));
  testing::TestStore store(dir.path() + "/db", &clock);
  {
    Importer importer(store.ctx, &store.regions, "510524",
                      store.cards->observers());
    auto checkpoint = importer.Status("kill");
    ASSERT_TRUE(checkpoint.ok());
    // Each batch holds back its last person (who may continue): 4 rows.
    EXPECT_GE(checkpoint->resume_after_line, 1 + 3 * (kBatch - 1));
    EXPECT_LT(checkpoint->resume_after_line, 1 + kPersons);
    EXPECT_EQ(checkpoint->accepted, checkpoint->resume_after_line - 1);
    EXPECT_FALSE(checkpoint->done);
  }
  const ImportTotals t = ImportAll(store, [] {});
  EXPECT_TRUE(t.done);
  EXPECT_EQ(t.accepted, static_cast<uint64_t>(kPersons));
  EXPECT_EQ(t.skipped, 0u);
  EXPECT_EQ(t.rejected, 0u);

  testing::TempDir once_dir;
  testing::TestStore once(once_dir.path() + "/db", &clock);
  ImportAll(once, [] {});
  EXPECT_EQ(AllEvents(*store.engine), AllEvents(*once.engine));
}

TEST(Metrics, RendersPrometheusText) {
  common::MetricsRegistry r;
  r.GetCounter("ssc_test_total", "Things.", {{"kind", "a\"b"}})->Add(3);
  r.GetGauge("ssc_test_gauge", "A level.")->Set(2.5);
  common::Histogram* h =
      r.GetHistogram("ssc_test_seconds", "Time.", {{"m", "x"}}, {0.1, 1});
  h->Observe(0.05);
  h->Observe(0.5);
  h->Observe(5);
  int collected = 0;
  r.AddCollector([&](common::MetricsRegistry& m) {
    ++collected;
    m.GetGauge("ssc_test_collected", "From a collector.")->Set(collected);
  });
  const std::string text = r.Render();
  EXPECT_EQ(collected, 1);
  EXPECT_TRUE(absl::StrContains(text, "# TYPE ssc_test_total counter\n"));
  EXPECT_TRUE(absl::StrContains(text, "ssc_test_total{kind=\"a\\\"b\"} 3\n"));
  EXPECT_TRUE(absl::StrContains(text, "ssc_test_gauge 2.5\n"));
  EXPECT_TRUE(absl::StrContains(
      text, "ssc_test_seconds_bucket{m=\"x\",le=\"0.1\"} 1\n"));
  EXPECT_TRUE(
      absl::StrContains(text, "ssc_test_seconds_bucket{m=\"x\",le=\"1\"} 2\n"));
  EXPECT_TRUE(absl::StrContains(
      text, "ssc_test_seconds_bucket{m=\"x\",le=\"+Inf\"} 3\n"));
  EXPECT_TRUE(absl::StrContains(text, "ssc_test_seconds_count{m=\"x\"} 3\n"));
  EXPECT_TRUE(absl::StrContains(text, "ssc_test_collected 1\n"));
  // The same series is the same object.
  EXPECT_EQ(r.GetCounter("ssc_test_total", "", {{"kind", "a\"b"}})->value(),
            3u);
}

}  // namespace
}  // namespace ssc::ops
