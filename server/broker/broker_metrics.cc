#include "server/broker/broker_metrics.h"

#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "server/common/status_util.h"

namespace leyr {
namespace {

// Codes that say the store itself failed, as opposed to an answer about the data.
bool IsStoreFailure(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kAborted:
      return true;
    default:
      return false;
  }
}

class InstrumentedStore final : public Store {
 public:
  InstrumentedStore(Store* inner, BrokerMetrics* metrics) : inner_(inner), metrics_(metrics) {}

  absl::Status Insert(const AuthorizationRecord& record, const std::string& state_hash) override {
    return Count("insert", inner_->Insert(record, state_hash));
  }
  absl::StatusOr<AuthorizationRecord> Get(absl::string_view id) override {
    return Count("get", inner_->Get(id));
  }
  absl::StatusOr<AuthorizationRecord> Complete(const std::string& state_hash,
                                               const Completion& completion) override {
    return Count("complete", inner_->Complete(state_hash, completion));
  }
  absl::StatusOr<AuthorizationRecord> Update(absl::string_view id,
                                             const Transition& transition) override {
    return Count("update", inner_->Update(id, transition));
  }
  absl::StatusOr<std::vector<AuthorizationRecord>> List(const ListQuery& query) override {
    return Count("list", inner_->List(query));
  }
  absl::StatusOr<int> Sweep(absl::Time cutoff) override {
    return Count("sweep", inner_->Sweep(cutoff));
  }
  absl::StatusOr<std::map<AuthState, int64_t>> CountByState() override {
    return Count("count_by_state", inner_->CountByState());
  }

 private:
  template <typename T>
  T Count(const char* operation, T result) {
    const absl::Status& status = StatusOf(result);
    if (IsStoreFailure(status)) {
      metrics_->store_errors->Add({operation, absl::StatusCodeToString(status.code())});
    }
    return result;
  }
  static const absl::Status& StatusOf(const absl::Status& s) { return s; }
  template <typename V>
  static const absl::Status& StatusOf(const absl::StatusOr<V>& s) {
    return s.status();
  }

  Store* inner_;
  BrokerMetrics* metrics_;
};

class InstrumentedLeyrClient final : public LeyrClient {
 public:
  InstrumentedLeyrClient(std::unique_ptr<LeyrClient> inner, BrokerMetrics* metrics)
      : inner_(std::move(inner)), metrics_(metrics),
        duration_(metrics->leyr_duration->WithLabels({})) {}

  void Send(LeyrRequest request, LeyrCallback done) override {
    const absl::Time start = absl::Now();
    inner_->Send(std::move(request), [this, start, done = std::move(done)](
                                         absl::StatusOr<LeyrResponse> response) {
      duration_->Observe(absl::Now() - start);
      metrics_->leyr_requests->Add(
          {response.ok() ? absl::StrCat(response->status_code) : ReasonOf(response.status())});
      done(std::move(response));
    });
  }
  LeyrClientStats Stats() const override { return inner_->Stats(); }

 private:
  std::unique_ptr<LeyrClient> inner_;
  BrokerMetrics* metrics_;
  Histogram* duration_;  // the family's only child (no labels); lives as long as the family
};

}  // namespace

BrokerMetrics::BrokerMetrics(Metrics* r)
    : registry(r),
      rpcs(r->AddCounter("leyr_broker_rpcs_total", "gRPC calls handled, by method and status code.",
                         {"method", "code"})),
      rpc_duration(r->AddHistogram("leyr_broker_rpc_duration_seconds",
                                   "Time from the start of a gRPC call to its status, by method.",
                                   {"method"})),
      leyr_requests(r->AddCounter(
          "leyr_broker_leyr_requests_total",
          "Requests sent to Leyr, by HTTP status (or error reason when no response came).",
          {"status"})),
      leyr_duration(r->AddHistogram("leyr_broker_leyr_request_duration_seconds",
                                    "Time from sending a request to Leyr to its outcome.", {})),
      state_changes(r->AddCounter("leyr_broker_authorization_state_changes_total",
                                  "Authorization state changes made by this replica, by new state.",
                                  {"state"})),
      store_errors(r->AddCounter("leyr_broker_store_errors_total",
                                 "Store calls that failed in the store (not NOT_FOUND and the "
                                 "like), by operation and status code.",
                                 {"operation", "code"})) {}

void AddBrokerGauges(Metrics* registry, Store* store, LeyrClient* leyr) {
  registry->AddGauge(
      "leyr_broker_authorizations", "Authorizations in the store, by state, at scrape time.",
      {"state"}, [store] {
        Metrics::GaugeSamples samples;
        auto counts = store->CountByState();
        if (!counts.ok()) return samples;  // counted in leyr_broker_store_errors_total
        for (const auto& [state, count] : *counts) {
          const std::string& name = broker::v1::Authorization::State_Name(state);
          samples.push_back({{absl::AsciiStrToLower(absl::StripPrefix(name, "STATE_"))},
                             static_cast<double>(count)});
        }
        return samples;
      });
  registry->AddGauge("leyr_broker_leyr_connections_opened_total",
                     "New connections opened to Leyr (a low rate means keep-alive works).", {},
                     [leyr] {
                       return Metrics::GaugeSamples{
                           {{}, static_cast<double>(leyr->Stats().connections_opened)}};
                     },
                     "counter");
}

std::unique_ptr<Store> InstrumentStore(Store* inner, BrokerMetrics* metrics) {
  return std::make_unique<InstrumentedStore>(inner, metrics);
}

std::unique_ptr<LeyrClient> InstrumentLeyrClient(std::unique_ptr<LeyrClient> inner,
                                                 BrokerMetrics* metrics) {
  return std::make_unique<InstrumentedLeyrClient>(std::move(inner), metrics);
}

}  // namespace leyr
