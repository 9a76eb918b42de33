#include "server/leyr/curl_epoll.h"

#include <sys/epoll.h>

#include <cerrno>

namespace leyr {

void MirrorCurlSocket(int epoll_fd, CURLM* multi, curl_socket_t fd, int what, void* socketp,
                      void* mark) {
  if (what == CURL_POLL_REMOVE) {
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
    return;
  }
  epoll_event ev{};
  ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0u) | (what & CURL_POLL_OUT ? EPOLLOUT : 0u);
  ev.data.fd = fd;
  if (socketp != nullptr) {
    if (epoll_ctl(epoll_fd, EPOLL_CTL_MOD, fd, &ev) != 0 && errno == ENOENT) {
      epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev);
    }
    return;
  }
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0 && errno == EEXIST) {
    epoll_ctl(epoll_fd, EPOLL_CTL_MOD, fd, &ev);
  }
  curl_multi_assign(multi, fd, mark);
}

int CurlSelectBits(uint32_t e) {
  return (e & EPOLLIN ? CURL_CSELECT_IN : 0) | (e & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
         (e & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
}

}  // namespace leyr
