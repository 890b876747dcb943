#pragma once
// An HTTP server on 127.0.0.1 at a free port, answering from its own thread: what every
// fake outside system (Salesforce, the helpdesk, the timeline) runs on. Add routes to
// server() before start().
#include <memory>
#include <string>
#include <thread>

namespace httplib {
class Server;
}

namespace fakes {

class LoopbackServer {
public:
    LoopbackServer();
    ~LoopbackServer();
    httplib::Server& server() { return *server_; }
    // Binds a free port, listens, and returns once requests are answered: the port.
    int start();
    // Stops answering and joins the thread; idempotent.
    void stop();
    std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

private:
    std::unique_ptr<httplib::Server> server_;
    std::thread thread_;
    int port_ = 0;
};

}  // namespace fakes
