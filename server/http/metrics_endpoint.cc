#include "server/http/metrics_endpoint.h"

#include <utility>

namespace leyr {

absl::StatusOr<std::unique_ptr<HttpServer>> StartMetricsEndpoint(const std::string& listen,
                                                                 const Metrics* metrics) {
  HttpServerOptions options;
  options.listen = listen;
  options.max_connections = 16;
  options.threads = 1;
  options.max_body_bytes = 0;
  return HttpServer::Start(options, [metrics](HttpRequest request, HttpResponder respond) {
    const HttpFields text = {{"Content-Type", "text/plain; charset=utf-8"}};
    if (request.path != "/metrics") return respond({404, text, "not found\n"});
    if (request.method != "GET" && request.method != "HEAD") {
      HttpFields headers = text;
      headers.emplace_back("Allow", "GET, HEAD");
      return respond({405, std::move(headers), "method not allowed\n"});
    }
    respond({200, {{"Content-Type", kPrometheusContentType}, {"Cache-Control", "no-store"}},
             metrics->Render()});
  });
}

}  // namespace leyr
