#ifndef LEYR_TESTS_TESTING_FAKE_RANDOM_H_
#define LEYR_TESTS_TESTING_FAKE_RANDOM_H_

// A predictable leyr::Random for tests: every call returns different bytes (a counter mixed
// into a fixed pattern), or exactly the bytes a test queued, and records the sizes asked for.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/common/random.h"

namespace leyr::testing {

class FakeRandom final : public Random {
 public:
  absl::StatusOr<std::string> Bytes(size_t n) override {
    absl::MutexLock lock(&mu_);
    sizes_.push_back(n);
    if (fail_) return absl::InternalError("the random number generator failed");
    if (!queued_.empty()) {
      std::string out = std::move(queued_.front());
      queued_.pop_front();
      out.resize(n, '\0');
      return out;
    }
    // Byte i of call c: (c * 131 + i * 7) mod 256, so calls never repeat for n >= 2.
    const uint64_t call = ++calls_;
    std::string out(n, '\0');
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>((call * 131 + i * 7 + (call >> 8)) & 0xff);
    return out;
  }

  // The next call returns `bytes` (padded or cut to the size asked for).
  void Queue(std::string bytes) {
    absl::MutexLock lock(&mu_);
    queued_.push_back(std::move(bytes));
  }
  void set_fail(bool fail) {
    absl::MutexLock lock(&mu_);
    fail_ = fail;
  }
  std::vector<size_t> sizes() {
    absl::MutexLock lock(&mu_);
    return sizes_;
  }

 private:
  absl::Mutex mu_;
  uint64_t calls_ ABSL_GUARDED_BY(mu_) = 0;
  bool fail_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<std::string> queued_ ABSL_GUARDED_BY(mu_);
  std::vector<size_t> sizes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace leyr::testing

#endif  // LEYR_TESTS_TESTING_FAKE_RANDOM_H_
