#ifndef LEYR_TESTS_TESTING_PROCESS_H_
#define LEYR_TESTS_TESTING_PROCESS_H_

#include <sys/types.h>

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace leyr::testing {

// A child process whose stdout and stderr are collected line by line, so that a test can wait
// for a line (the "listening" log line) instead of sleeping.
class Process {
 public:
  // Starts `argv[0]` with `argv`. The child gets SIGKILL if the test process dies.
  static absl::StatusOr<std::unique_ptr<Process>> Start(const std::vector<std::string>& argv);
  ~Process();  // SIGTERM, then reaps; SIGKILL after 10 s.

  // Waits until a line satisfies `match`; returns that line.
  absl::StatusOr<std::string> WaitForLine(const std::function<bool(const std::string&)>& match,
                                          absl::Duration timeout = absl::Seconds(20));
  // Waits for the JSON "listening" line and returns its "address" value ("127.0.0.1:PORT").
  absl::StatusOr<std::string> WaitForListening(absl::Duration timeout = absl::Seconds(20));
  // Sends SIGTERM and waits for the exit; returns the exit status (as from waitpid).
  int Stop();
  // Sends `signal` and returns at once.
  void Signal(int signal);
  // Waits for the process to exit by itself (after Signal); returns the exit status, or
  // DEADLINE_EXCEEDED (the process is then left running for the destructor).
  absl::StatusOr<int> WaitForExit(absl::Duration timeout);
  // Everything the process printed so far.
  std::string Output();
  pid_t pid() const { return pid_; }

 private:
  Process(pid_t pid, int fd);
  void ReadLoop();

  pid_t pid_;
  int fd_;
  bool reaped_ = false;
  int exit_status_ = 0;
  std::thread reader_;
  absl::Mutex mu_;
  std::string output_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
  bool eof_ ABSL_GUARDED_BY(mu_) = false;
};

// A fresh temporary directory, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  // Writes `content` to path()/name and returns the full path.
  std::string WriteFile(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

}  // namespace leyr::testing

#endif  // LEYR_TESTS_TESTING_PROCESS_H_
