#include "server/common/metrics.h"

#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace leyr {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(MetricsTest, CountersRenderWithLabelsInTheTextFormat) {
  Metrics metrics;
  CounterFamily* rpcs = metrics.AddCounter("test_rpcs_total", "RPCs handled.", {"method", "code"});
  rpcs->Add({"CallLeyr", "OK"});
  rpcs->Add({"CallLeyr", "OK"}, 2);
  rpcs->Add({"Begin", "NOT_FOUND"});
  EXPECT_EQ(rpcs->Value({"CallLeyr", "OK"}), 3);
  EXPECT_EQ(rpcs->Value({"Get", "OK"}), 0);
  std::string text = metrics.Render();
  EXPECT_THAT(text, HasSubstr("# HELP test_rpcs_total RPCs handled.\n"
                              "# TYPE test_rpcs_total counter\n"));
  EXPECT_THAT(text, HasSubstr("test_rpcs_total{method=\"CallLeyr\",code=\"OK\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("test_rpcs_total{method=\"Begin\",code=\"NOT_FOUND\"} 1\n"));
}

TEST(MetricsTest, LabelValuesAreEscaped) {
  Metrics metrics;
  metrics.AddCounter("test_total", "h", {"v"})->Add({"a\"b\\c\nd"});
  EXPECT_THAT(metrics.Render(), HasSubstr("test_total{v=\"a\\\"b\\\\c\\nd\"} 1\n"));
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithSumAndCount) {
  Metrics metrics;
  HistogramFamily* latency =
      metrics.AddHistogram("test_seconds", "Latency.", {"method"}, {0.1, 1});
  latency->WithLabels({"m"})->Observe(0.05);
  latency->WithLabels({"m"})->Observe(0.1);  // an observation on a bound counts in that bucket
  latency->WithLabels({"m"})->Observe(0.5);
  latency->WithLabels({"m"})->Observe(7.0);
  std::string text = metrics.Render();
  EXPECT_THAT(text, HasSubstr("# TYPE test_seconds histogram\n"));
  EXPECT_THAT(text, HasSubstr("test_seconds_bucket{method=\"m\",le=\"0.1\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("test_seconds_bucket{method=\"m\",le=\"1\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("test_seconds_bucket{method=\"m\",le=\"+Inf\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("test_seconds_sum{method=\"m\"} 7.65\n"));
  EXPECT_THAT(text, HasSubstr("test_seconds_count{method=\"m\"} 4\n"));
}

TEST(MetricsTest, GaugesAreCollectedAtEachScrape) {
  Metrics metrics;
  int scrapes = 0;
  metrics.AddGauge("test_things", "Things by kind.", {"kind"}, [&scrapes] {
    ++scrapes;
    return Metrics::GaugeSamples{{{"a"}, static_cast<double>(scrapes)}, {{"b"}, 0.5}};
  });
  EXPECT_THAT(metrics.Render(), HasSubstr("test_things{kind=\"a\"} 1\n"));
  std::string second = metrics.Render();
  EXPECT_THAT(second, HasSubstr("# TYPE test_things gauge\n"));
  EXPECT_THAT(second, HasSubstr("test_things{kind=\"a\"} 2\n"));
  EXPECT_THAT(second, HasSubstr("test_things{kind=\"b\"} 0.5\n"));
}

TEST(MetricsTest, ConcurrentIncrementsAreNotLost) {
  Metrics metrics;
  CounterFamily* family = metrics.AddCounter("test_total", "h", {"t"});
  HistogramFamily* histogram = metrics.AddHistogram("test_seconds", "h", {});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        family->Add({"x"});
        histogram->WithLabels({})->Observe(0.001);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(family->Value({"x"}), 40000);
  EXPECT_EQ(histogram->WithLabels({})->count(), 40000u);
  EXPECT_THAT(metrics.Render(), HasSubstr("test_seconds_count 40000\n"));
  EXPECT_THAT(metrics.Render(), Not(HasSubstr("{}")));
}

}  // namespace
}  // namespace leyr
