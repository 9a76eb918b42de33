#ifndef LEYR_SERVER_BROKER_BROKER_METRICS_H_
#define LEYR_SERVER_BROKER_BROKER_METRICS_H_

// The broker's Prometheus metrics (README "Metrics" lists them). Every label value is chosen by
// the code: method names, gRPC code names, HTTP status codes, error reasons, states, store
// operations. Nothing from a request, and never a secret.

#include <memory>

#include "server/broker/store.h"
#include "server/common/metrics.h"
#include "server/leyr/leyr_client.h"

namespace leyr {

struct BrokerMetrics {
  explicit BrokerMetrics(Metrics* registry);

  Metrics* registry;
  // leyr_broker_rpcs_total{method,code}
  CounterFamily* rpcs;
  // leyr_broker_rpc_duration_seconds{method}
  HistogramFamily* rpc_duration;
  // leyr_broker_leyr_requests_total{status}: the HTTP status, or the error reason when no
  // response came (LEYR_UNAVAILABLE, LEYR_TIMEOUT, ...).
  CounterFamily* leyr_requests;
  // leyr_broker_leyr_request_duration_seconds
  HistogramFamily* leyr_duration;
  // leyr_broker_authorization_state_changes_total{state}: changes into each state.
  CounterFamily* state_changes;
  // leyr_broker_store_errors_total{operation,code}: store calls that failed for reasons of the
  // store itself (UNAVAILABLE, INTERNAL, ...), not answers such as NOT_FOUND.
  CounterFamily* store_errors;
};

// Adds the scrape-time metrics: leyr_broker_authorizations{state} (from `store`),
// leyr_broker_leyr_connections_opened_total (from `leyr`). Both must outlive the registry's use.
void AddBrokerGauges(Metrics* registry, Store* store, LeyrClient* leyr);

// A Store that counts the failures of `inner` into metrics->store_errors.
std::unique_ptr<Store> InstrumentStore(Store* inner, BrokerMetrics* metrics);

// A LeyrClient that counts every request of `inner` by outcome, with its latency.
std::unique_ptr<LeyrClient> InstrumentLeyrClient(std::unique_ptr<LeyrClient> inner,
                                                 BrokerMetrics* metrics);

}  // namespace leyr

#endif  // LEYR_SERVER_BROKER_BROKER_METRICS_H_
