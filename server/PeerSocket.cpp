#include "server/PeerSocket.h"

#include <cstdlib>
#include <dirent.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>

namespace lathe::server {
namespace {

/// A socket address as the HTTP library spells it (numeric host, port).
bool endpoint(const sockaddr_storage &address, socklen_t length, std::string &host, int &port) {
  char h[NI_MAXHOST], p[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<const sockaddr *>(&address), length, h, sizeof h, p, sizeof p,
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0)
    return false;
  host = h;
  port = std::atoi(p);
  return true;
}

} // namespace

int findConnectionSocket(const std::string &remoteAddr, int remotePort,
                         const std::string &localAddr, int localPort) {
  DIR *dir = opendir("/proc/self/fd");
  if (!dir)
    return -1;
  int found = -1;
  while (dirent *entry = readdir(dir)) {
    char *end = nullptr;
    long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == dirfd(dir))
      continue;
    sockaddr_storage peer{}, self{};
    socklen_t peerLength = sizeof peer, selfLength = sizeof self;
    if (getpeername(int(fd), reinterpret_cast<sockaddr *>(&peer), &peerLength) != 0 ||
        getsockname(int(fd), reinterpret_cast<sockaddr *>(&self), &selfLength) != 0)
      continue;
    std::string peerHost, selfHost;
    int peerPort = 0, selfPort = 0;
    if (endpoint(peer, peerLength, peerHost, peerPort) &&
        endpoint(self, selfLength, selfHost, selfPort) && peerHost == remoteAddr &&
        peerPort == remotePort && selfHost == localAddr && selfPort == localPort) {
      found = int(fd);
      break;
    }
  }
  closedir(dir);
  return found;
}

bool peerHungUp(int fd) {
  pollfd p{fd, POLLRDHUP, 0};
  if (poll(&p, 1, 0) <= 0)
    return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

} // namespace lathe::server
