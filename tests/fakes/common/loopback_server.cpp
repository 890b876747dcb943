#include "loopback_server.h"

#include <httplib.h>

#include <chrono>

namespace fakes {

LoopbackServer::LoopbackServer() : server_(std::make_unique<httplib::Server>()) {
    // Small JSON answers: without TCP_NODELAY, Nagle and delayed ACKs add ~40 ms to each.
    server_->set_tcp_nodelay(true);
}

LoopbackServer::~LoopbackServer() { stop(); }

int LoopbackServer::start() {
    port_ = server_->bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    while (!server_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return port_;
}

void LoopbackServer::stop() {
    if (!thread_.joinable()) return;
    server_->stop();
    thread_.join();
}

}  // namespace fakes
