// Benchmark (not a test): BeginAuthorization calls per second against a real leyr-broker on the
// memory store and on the PostgreSQL store. Run through scripts/pg-benchmark.sh, which starts a
// throw-away PostgreSQL cluster and runs:
//
//   begin_benchmark memory|postgres SECONDS THREADS
//
// (postgres reads LEYR_PG_INFO_DIR like the tests). Prints one line per run.

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/broker_client.h"
#include "tests/store/pg_test_database.h"
#include "tests/testing/process.h"

using leyr::BrokerClient;
using leyr::testing::PgTestDatabase;
using leyr::testing::Process;
using leyr::testing::TempDir;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s memory|postgres SECONDS THREADS\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  const int seconds = std::atoi(argv[2]);
  const int threads = std::atoi(argv[3]);
  TempDir dir;
  std::string store_config = R"("store":"memory")";
  std::unique_ptr<PgTestDatabase> db;
  if (mode == "postgres") {
    db = std::make_unique<PgTestDatabase>();
    if (!db->available()) {
      std::fprintf(stderr, "no PostgreSQL (LEYR_PG_INFO_DIR): %s\n", db->error().c_str());
      return 1;
    }
    store_config = absl::StrCat(
        R"("store":"postgres","sealing_key_file":")",
        dir.WriteFile("keys.json",
                      R"({"primary":"k1","keys":[{"id":"k1","key_base64":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}]})"),
        R"(","postgres":{"conninfo":")", db->Options().conninfo, R"(","password_file":")",
        dir.WriteFile("pw", db->Options().password), R"(","pool_size":8})");
  }
  const std::string config = dir.WriteFile(
      "broker.json",
      absl::StrCat(
          R"({"listen":["127.0.0.1:0"],"plaintext_development":true,)",
          R"("leyr":{"base_uri":"http://127.0.0.1:9","client_id":"c","client_secret_file":")",
          dir.WriteFile("secret", "benchmark-secret"), R"("},)",
          R"("connections":[{"name":"athena","emr":"athenapractice","base_uri":"http://127.0.0.1:9",)",
          R"("client_id":"x","redirect_uri":"http://127.0.0.1:9/cb"}],)", store_config, "}"));
  auto broker = Process::Start({LEYR_BROKER_BIN, "--config=" + config});
  if (!broker.ok()) return 1;
  auto line = (*broker)->WaitForLine(
      [](const std::string& l) { return absl::StrContains(l, "\"msg\":\"listening\""); });
  if (!line.ok()) {
    std::fprintf(stderr, "broker did not start\n");
    return 1;
  }
  const std::string key = "\"address\":\"";
  size_t start = line->find(key) + key.size();
  const std::string address = line->substr(start, line->find('"', start) - start);

  std::atomic<int64_t> ok{0}, failed{0};
  std::atomic<bool> measuring{false}, stop{false};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      auto client = BrokerClient::ConnectInsecure(address);
      leyr::broker::v1::BeginAuthorizationRequest request;
      request.set_connection("athena");
      while (!stop.load()) {
        bool good = client->Begin(request).ok();
        if (measuring.load()) (good ? ok : failed).fetch_add(1);
      }
    });
  }
  absl::SleepFor(absl::Seconds(1));  // warm-up: connections, prepared statements
  measuring = true;
  const absl::Time t0 = absl::Now();
  absl::SleepFor(absl::Seconds(seconds));
  measuring = false;
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - t0);
  stop = true;
  for (auto& w : workers) w.join();
  std::printf("store=%s threads=%d seconds=%.1f begins=%lld errors=%lld begins_per_second=%.0f\n",
              mode.c_str(), threads, elapsed, static_cast<long long>(ok.load()),
              static_cast<long long>(failed.load()), ok.load() / elapsed);
  return failed.load() == 0 ? 0 : 1;
}
