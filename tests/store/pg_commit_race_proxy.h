#ifndef LEYR_TESTS_STORE_PG_COMMIT_RACE_PROXY_H_
#define LEYR_TESTS_STORE_PG_COMMIT_RACE_PROXY_H_

// A TCP proxy between a store and the real PostgreSQL test cluster that can end a session at the
// one moment that lost acknowledged writes before 94320e9: after the server has answered a
// statement's CommandComplete and before the Sync that commits its implicit transaction.
//
// It relays bytes unchanged, reading only the message frames of the wire protocol (a type byte
// and a length) to find that moment. When armed, the next Sync that closes a batch with an
// Execute in it is held back and a Flush sent in its place, so the server answers the statement
// without committing it. If that answer is an INSERT's CommandComplete, the client gets it, then
// the ErrorResponse a fast shutdown sends (FATAL, SQLSTATE 57P01), and both connections are
// closed: the server, which never saw the Sync, rolls the row back. Any other answer releases
// the Sync. Fires once per ArmForNextInsert.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"

namespace leyr::testing {

class PgCommitRaceProxy {
 public:
  // Listens on 127.0.0.1, port 0, and relays each connection to 127.0.0.1:`server_port`.
  explicit PgCommitRaceProxy(int server_port) : server_port_(server_port) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (listen_fd_ < 0 || pipe2(stop_, O_CLOEXEC) != 0 ||
        bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(listen_fd_, 16) != 0 ||
        getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port_ = ntohs(addr.sin_port);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  ~PgCommitRaceProxy() {
    if (stop_[1] >= 0) (void)!write(stop_[1], "x", 1);  // stays readable: every loop ends
    if (accept_thread_.joinable()) accept_thread_.join();
    std::vector<std::thread> relays;
    {
      absl::MutexLock lock(&mu_);
      relays.swap(relays_);
    }
    for (auto& relay : relays) relay.join();
    for (int fd : {listen_fd_, stop_[0], stop_[1]}) {
      if (fd >= 0) close(fd);
    }
  }

  // 0 when the proxy could not start.
  int port() const { return port_; }
  void ArmForNextInsert() { armed_.store(true); }
  // True once a session was ended between an INSERT's CommandComplete and its Sync.
  bool fired() const { return fired_.load(); }

 private:
  static uint32_t Be32(const std::string& s, size_t at) {
    uint32_t v;
    std::memcpy(&v, s.data() + at, 4);
    return ntohl(v);
  }

  // The whole message at the front of `buffer`, or "" while it has not all arrived: typed (a type
  // byte, then a length that counts itself) or untyped (the length first: the startup phase).
  static std::string NextMessage(const std::string& buffer, bool typed) {
    const size_t head = typed ? 1 : 0;
    if (buffer.size() < head + 4) return "";
    const size_t size = head + Be32(buffer, head);
    return buffer.size() < size ? "" : buffer.substr(0, size);
  }

  static bool WriteAll(int fd, const std::string& bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }

  // What a server in a fast shutdown sends before it closes the session.
  static std::string FatalAdminShutdown() {
    std::string fields;
    for (const char* f : {"SFATAL", "VFATAL", "C57P01",
                          "Mterminating connection due to administrator command"}) {
      fields.append(f);
      fields.push_back('\0');
    }
    fields.push_back('\0');
    const uint32_t len = htonl(static_cast<uint32_t>(fields.size() + 4));
    std::string message(1, 'E');
    message.append(reinterpret_cast<const char*>(&len), 4);
    return message + fields;
  }

  void AcceptLoop() {
    for (;;) {
      pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
      if (poll(fds, 2, -1) < 0 || fds[1].revents != 0) return;
      const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      const int server = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(static_cast<uint16_t>(server_port_));
      if (server < 0 || connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        close(client);
        if (server >= 0) close(server);
        continue;
      }
      absl::MutexLock lock(&mu_);
      relays_.emplace_back([this, client, server] {
        Relay(client, server);
        close(client);
        close(server);
      });
    }
  }

  // Relays one session until either side closes, the proxy stops, or the fault fires.
  void Relay(int client, int server) {
    std::string from_client, from_server;
    bool started = false;       // the client's startup message has gone through
    int raw_replies = 0;        // one-byte answers owed to SSLRequest / GSSENCRequest
    bool batch_executes = false;
    std::string held_sync;      // the Sync held back while the statement is answered
    char buf[16384];
    for (;;) {
      pollfd fds[3] = {{client, POLLIN, 0}, {server, POLLIN, 0}, {stop_[0], POLLIN, 0}};
      if (poll(fds, 3, -1) < 0 || fds[2].revents != 0) return;
      if (fds[0].revents != 0) {
        const ssize_t n = recv(client, buf, sizeof(buf), 0);
        if (n <= 0) return;
        from_client.append(buf, static_cast<size_t>(n));
        for (;;) {
          std::string message = NextMessage(from_client, started);
          if (message.empty()) break;
          if (!started) {  // untyped: length, then a protocol version or a request code
            const uint32_t code = message.size() >= 8 ? Be32(message, 4) : 0;
            if (code == 80877103 || code == 80877104) {  // SSLRequest, GSSENCRequest
              ++raw_replies;
            } else {
              started = true;
            }
          } else {
            if (message[0] == 'E') batch_executes = true;  // Execute
            if (message[0] == 'S') {                       // Sync
              const bool hold = batch_executes && held_sync.empty() && armed_.exchange(false);
              batch_executes = false;
              if (hold) {
                held_sync = message;
                message = std::string("H\0\0\0\4", 5);  // Flush: answer, do not commit
              }
            }
          }
          from_client.erase(0, message.size());
          if (!WriteAll(server, message)) return;
        }
      }
      if (fds[1].revents != 0) {
        const ssize_t n = recv(server, buf, sizeof(buf), 0);
        if (n <= 0) return;
        from_server.append(buf, static_cast<size_t>(n));
        for (;;) {
          // A request for encryption is answered with one byte ('N' here), not a message.
          std::string message =
              raw_replies > 0 ? from_server.substr(0, 1) : NextMessage(from_server, true);
          if (message.empty()) break;
          if (raw_replies > 0) --raw_replies;
          from_server.erase(0, message.size());
          const bool answer = !held_sync.empty() && raw_replies == 0 &&
                              (message[0] == 'C' || message[0] == 'E' || message[0] == 'I' ||
                               message[0] == 's');
          if (answer && message[0] == 'C' && absl::StartsWith(message.substr(5), "INSERT")) {
            WriteAll(client, message + FatalAdminShutdown());
            fired_.store(true);
            return;  // both connections close; the server never sees the Sync
          }
          if (!WriteAll(client, message)) return;
          if (answer) {
            if (!WriteAll(server, held_sync)) return;
            held_sync.clear();
          }
        }
      }
    }
  }

  const int server_port_;
  int listen_fd_ = -1;
  int stop_[2] = {-1, -1};
  int port_ = 0;
  std::atomic<bool> armed_{false};
  std::atomic<bool> fired_{false};
  std::thread accept_thread_;
  absl::Mutex mu_;
  std::vector<std::thread> relays_ ABSL_GUARDED_BY(mu_);
};

}  // namespace leyr::testing

#endif  // LEYR_TESTS_STORE_PG_COMMIT_RACE_PROXY_H_
