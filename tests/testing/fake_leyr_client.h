#ifndef LEYR_TESTS_TESTING_FAKE_LEYR_CLIENT_H_
#define LEYR_TESTS_TESTING_FAKE_LEYR_CLIENT_H_

// A scripted leyr::LeyrClient for tests: records every request it is sent and answers with
// what the test's handler returns (by default 200 with "{}"), synchronously on the calling
// thread, or holds the answers until the test releases them.

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/leyr/leyr_client.h"

namespace leyr::testing {

class FakeLeyrClient final : public LeyrClient {
 public:
  using Handler = std::function<absl::StatusOr<LeyrResponse>(const LeyrRequest&)>;

  // A response with a JSON body.
  static LeyrResponse Json(int status, std::string body) {
    LeyrResponse r;
    r.status_code = status;
    r.headers = {{"content-type", "application/json"}};
    r.body = std::move(body);
    return r;
  }
  // Leyr's error JSON ({"code","type","title","status","detail","instance"}).
  static LeyrResponse Error(int http_status, const std::string& code, int json_status) {
    return Json(http_status,
                absl::StrCat("{\"code\":\"", code, "\",\"type\":\"https://docs.leyr.io/errors/",
                             code, "\",\"title\":\"", code, "\",\"status\":", json_status,
                             ",\"detail\":\"scripted by the test\",\"instance\":\"/api/emrs\"}"));
  }

  void Send(LeyrRequest request, LeyrCallback done) override {
    Handler handler;
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back(request);
      if (hold_) {
        held_.emplace_back(std::move(request), std::move(done));
        return;
      }
      handler = handler_;
    }
    done(handler ? handler(request) : absl::StatusOr<LeyrResponse>(Json(200, "{}")));
  }

  void SetHandler(Handler handler) {
    absl::MutexLock lock(&mu_);
    handler_ = std::move(handler);
  }
  // Answers every request with `response`.
  void AnswerAlways(absl::StatusOr<LeyrResponse> response) {
    SetHandler([response](const LeyrRequest&) { return response; });
  }

  // While holding, requests are recorded but not answered until ReleaseHeld().
  void set_hold(bool hold) {
    absl::MutexLock lock(&mu_);
    hold_ = hold;
  }
  // Answers the held requests with the handler (on the calling thread). Returns how many.
  size_t ReleaseHeld() {
    std::vector<std::pair<LeyrRequest, LeyrCallback>> held;
    Handler handler;
    {
      absl::MutexLock lock(&mu_);
      held.swap(held_);
      handler = handler_;
    }
    for (auto& [request, done] : held) {
      done(handler ? handler(request) : absl::StatusOr<LeyrResponse>(Json(200, "{}")));
    }
    return held.size();
  }

  std::vector<LeyrRequest> requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  size_t request_count() {
    absl::MutexLock lock(&mu_);
    return requests_.size();
  }

 private:
  absl::Mutex mu_;
  Handler handler_ ABSL_GUARDED_BY(mu_);
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<LeyrRequest> requests_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<LeyrRequest, LeyrCallback>> held_ ABSL_GUARDED_BY(mu_);
};

}  // namespace leyr::testing

#endif  // LEYR_TESTS_TESTING_FAKE_LEYR_CLIENT_H_
