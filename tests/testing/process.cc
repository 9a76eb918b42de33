#include "tests/testing/process.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace leyr::testing {

absl::StatusOr<std::unique_ptr<Process>> Process::Start(const std::vector<std::string>& argv) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(fds[1]);
  return std::unique_ptr<Process>(new Process(pid, fds[0]));
}

Process::Process(pid_t pid, int fd) : pid_(pid), fd_(fd), reader_([this] { ReadLoop(); }) {}

Process::~Process() {
  Stop();
  reader_.join();
  close(fd_);
}

void Process::ReadLoop() {
  char buf[4096];
  std::string partial;
  while (true) {
    ssize_t n = read(fd_, buf, sizeof(buf));
    if (n <= 0) break;
    absl::MutexLock lock(&mu_);
    output_.append(buf, n);
    partial.append(buf, n);
    size_t pos;
    while ((pos = partial.find('\n')) != std::string::npos) {
      lines_.push_back(partial.substr(0, pos));
      partial.erase(0, pos + 1);
    }
  }
  absl::MutexLock lock(&mu_);
  if (!partial.empty()) lines_.push_back(partial);
  eof_ = true;
}

absl::StatusOr<std::string> Process::WaitForLine(
    const std::function<bool(const std::string&)>& match, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  size_t checked = 0;
  std::string found;
  auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (; checked < lines_.size(); ++checked) {
      if (match(lines_[checked])) {
        found = lines_[checked];
        return true;
      }
    }
    return eof_;
  };
  bool ok = mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (!found.empty()) return found;
  return absl::DeadlineExceededError(
      absl::StrCat(ok ? "process exited" : "timed out", " before the expected line; output:\n",
                   output_));
}

absl::StatusOr<std::string> Process::WaitForListening(absl::Duration timeout) {
  auto line = WaitForLine(
      [](const std::string& l) { return l.find("\"msg\":\"listening\"") != std::string::npos; },
      timeout);
  if (!line.ok()) return line.status();
  const std::string key = "\"address\":\"";
  size_t start = line->find(key);
  if (start == std::string::npos) return absl::InternalError("listening line without address");
  start += key.size();
  return line->substr(start, line->find('"', start) - start);
}

void Process::Signal(int signal) {
  if (!reaped_) kill(pid_, signal);
}

absl::StatusOr<int> Process::WaitForExit(absl::Duration timeout) {
  if (reaped_) return exit_status_;
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
  if (pidfd < 0) return absl::InternalError("pidfd_open failed");
  pollfd p{pidfd, POLLIN, 0};
  int ready = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  close(pidfd);
  if (ready != 1) return absl::DeadlineExceededError("the process did not exit in time");
  waitpid(pid_, &exit_status_, 0);
  reaped_ = true;
  return exit_status_;
}

int Process::Stop() {
  if (reaped_) return exit_status_;
  kill(pid_, SIGTERM);
  // Wait for the exit on a pidfd (no polling loop); SIGKILL after 10 s.
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    if (poll(&p, 1, 10000) != 1) kill(pid_, SIGKILL);
    close(pidfd);
  }
  waitpid(pid_, &exit_status_, 0);
  reaped_ = true;
  return exit_status_;
}

std::string Process::Output() {
  absl::MutexLock lock(&mu_);
  return output_;
}

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "leyr-test-XXXXXX").string();
  char* dir = mkdtemp(tmpl.data());
  path_ = dir ? dir : "";
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

std::string TempDir::WriteFile(const std::string& name, const std::string& content) const {
  std::string full = path_ + "/" + name;
  std::ofstream(full, std::ios::binary) << content;
  return full;
}

}  // namespace leyr::testing
