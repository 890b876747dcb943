#pragma once
// A plain TCP client socket to 127.0.0.1, for tests that speak to a server byte by byte.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>

namespace testing {

// A connected socket, or -1. With `receive_guard_s`, a read waits at most that long (a guard
// against a hang, not a timing check).
inline int connect_loopback(int port, int receive_guard_s = 0) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    if (receive_guard_s > 0) {
        timeval guard{receive_guard_s, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &guard, sizeof guard);
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

}  // namespace testing
