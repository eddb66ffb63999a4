// Noticing that an HTTP client went away while its request is generating.
// The HTTP library does not hand a request's socket to its handler, so it is
// found by its two ends: among this process's sockets, the one whose peer is
// the request's remote address and port and whose own address is the local
// one. The engine then polls it between steps, so a client that disconnects
// frees its sequence before the next step (Linux: /proc/self/fd, POLLRDHUP).
#pragma once

#include <string>

namespace lathe::server {

/// The connection's socket, or -1 when none matches (the request then ends
/// only when a write to the client fails).
int findConnectionSocket(const std::string &remoteAddr, int remotePort,
                         const std::string &localAddr, int localPort);

/// Whether the peer of `fd` has closed or reset the connection; never
/// blocks. Data the client sent (a pipelined request) is not a hang-up.
bool peerHungUp(int fd);

} // namespace lathe::server
