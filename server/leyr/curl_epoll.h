#ifndef LEYR_SERVER_LEYR_CURL_EPOLL_H_
#define LEYR_SERVER_LEYR_CURL_EPOLL_H_

#include <curl/curl.h>

#include <cstdint>

namespace leyr {

// Helpers for driving libcurl's multi socket interface from an epoll loop (the Leyr client,
// and the benchmark's HTTP load generator).

// For a CURLMOPT_SOCKETFUNCTION: mirrors what curl wants to wait for on `fd` into `epoll_fd`.
// A socket's first report adds it and marks it with curl_multi_assign(multi, fd, mark) (curl
// hands the mark back as `socketp` until it removes the socket); later reports modify it, and
// CURL_POLL_REMOVE deletes it: one epoll_ctl per report, never a MOD that fails for a socket not
// yet added. `mark` must not be null.
void MirrorCurlSocket(int epoll_fd, CURLM* multi, curl_socket_t fd, int what, void* socketp,
                      void* mark);

// The CURL_CSELECT_* bits for curl_multi_socket_action from an epoll event mask.
int CurlSelectBits(uint32_t epoll_events);

}  // namespace leyr

#endif  // LEYR_SERVER_LEYR_CURL_EPOLL_H_
