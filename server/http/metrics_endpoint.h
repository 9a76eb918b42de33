#ifndef LEYR_SERVER_HTTP_METRICS_ENDPOINT_H_
#define LEYR_SERVER_HTTP_METRICS_ENDPOINT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/common/metrics.h"
#include "server/http/http_server.h"

namespace leyr {

// The admin port: GET /metrics answers `metrics` in the Prometheus text format; every other path
// is 404 and every other method 405. Small limits (one thread, 16 connections): scrapers only.
absl::StatusOr<std::unique_ptr<HttpServer>> StartMetricsEndpoint(const std::string& listen,
                                                                 const Metrics* metrics);

}  // namespace leyr

#endif  // LEYR_SERVER_HTTP_METRICS_ENDPOINT_H_
