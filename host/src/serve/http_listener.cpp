#include "http_listener.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace crmsync {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::string IncomingRequest::header(const std::string& lowercase_name) const {
    auto it = headers.find(lowercase_name);
    return it == headers.end() ? std::string() : it->second;
}

namespace {
std::string url_decode(std::string_view text) {
    auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '+') out += ' ';
        else if (text[i] == '%' && i + 2 < text.size() && hex(text[i + 1]) && hex(text[i + 2])) {
            out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
            i += 2;
        } else {
            out += text[i];
        }
    }
    return out;
}
}  // namespace

std::map<std::string, std::string> IncomingRequest::query() const {
    std::map<std::string, std::string> out;
    auto q = target.find('?');
    if (q == std::string::npos) return out;
    std::string_view rest(target);
    rest.remove_prefix(q + 1);
    while (!rest.empty()) {
        auto part = rest.substr(0, rest.find('&'));
        rest.remove_prefix(std::min(rest.size(), part.size() + 1));
        auto eq = part.find('=');
        out[url_decode(part.substr(0, eq))] = eq == std::string_view::npos ? "" : url_decode(part.substr(eq + 1));
    }
    return out;
}

// Members are destroyed bottom-up: the io_context (and with it every pending session) goes
// before the connection counts the sessions give back on destruction.
struct HttpListener::State {
    Handler handler;
    ListenerLimits limits;
    RefusalCounter refused;

    std::mutex mutex;
    std::map<std::string, size_t> per_client;  // address -> open connections
    size_t open = 0;

    // Dropped whole on stop: every connection closes with it.
    struct Io {
        asio::io_context ioc;
        tcp::acceptor acceptor{ioc};
        asio::steady_timer backoff{ioc};  // after accept fails (out of descriptors): wait, then go on
    };
    std::unique_ptr<Io> io = std::make_unique<Io>();
    std::vector<std::thread> threads;
    int port = 0;
    bool stopped = false;

    bool admit(const std::string& peer) {
        std::lock_guard<std::mutex> lock(mutex);
        if (open >= limits.max_connections || per_client[peer] >= limits.max_per_client) return false;
        ++open;
        ++per_client[peer];
        return true;
    }
    void release(const std::string& peer) {
        std::lock_guard<std::mutex> lock(mutex);
        --open;
        if (--per_client[peer] == 0) per_client.erase(peer);
    }
    void accept();
};

namespace {

const boost::system::error_category& http_errors() { return http::make_error_code(http::error::bad_target).category(); }

HttpAnswer plain_answer(int status, const std::string& error, const std::string& message) {
    std::string body = "{\"error\":\"" + error + "\",\"message\":\"" + message + "\"}";
    return HttpAnswer{status, "application/json", body};
}

// One connection, on its own strand: read a header (deadline), then its body (deadline),
// answer, and with keep-alive go round again.
class Session : public std::enable_shared_from_this<Session> {
public:
    Session(tcp::socket socket, HttpListener::State& state, std::string peer)
        : stream_(std::move(socket)), state_(state), peer_(std::move(peer)) {}
    ~Session() { state_.release(peer_); }

    void start() { asio::dispatch(stream_.get_executor(), beast::bind_front_handler(&Session::read_header, shared_from_this())); }

private:
    void read_header() {
        parser_.emplace();
        parser_->header_limit(static_cast<std::uint32_t>(state_.limits.max_header));
        parser_->body_limit(state_.limits.max_body);
        stream_.expires_after(state_.limits.header_timeout);
        http::async_read_header(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::on_header, shared_from_this()));
    }

    void on_header(beast::error_code ec, std::size_t) {
        if (ec) return failed(ec);
        stream_.expires_after(state_.limits.body_timeout);
        http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::on_body, shared_from_this()));
    }

    void on_body(beast::error_code ec, std::size_t) {
        if (ec) return failed(ec);
        auto& message = parser_->get();
        IncomingRequest request;
        request.method = std::string(message.method_string());
        request.target = std::string(message.target());
        for (const auto& field : message) {
            std::string name(field.name_string());
            std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
            request.headers.emplace(std::move(name), std::string(field.value()));  // the first of a repeated header
        }
        request.body = std::move(message.body());
        HttpAnswer answer;
        try {
            answer = state_.handler(request);
        } catch (const std::exception&) {
            answer = plain_answer(500, "internal", "the request could not be handled; send it again");
        }
        send(answer, message.keep_alive());
    }

    // A request that broke a limit or the protocol gets its status and the connection
    // closes; a client that went quiet or away is simply closed.
    void failed(beast::error_code ec) {
        if (ec == http::error::body_limit) {
            state_.refused("too_large");
            return send(plain_answer(413, "too_large", "the body is over the limit"), false);
        }
        if (ec == http::error::header_limit) {
            state_.refused("bad_request");
            return send(plain_answer(431, "bad_request", "the request header is too large"), false);
        }
        if (ec == beast::error::timeout) {
            state_.refused("timeout");
            return;
        }
        // The client went away (before a request, or in the middle of one): nothing to answer.
        if (ec == http::error::end_of_stream || ec == http::error::partial_message || ec.category() != http_errors()) return;
        state_.refused("bad_request");
        send(plain_answer(400, "bad_request", "the request is not well-formed HTTP/1.1"), false);
    }

    void send(const HttpAnswer& answer, bool keep_alive) {
        response_ = {};
        response_.version(11);
        response_.result(static_cast<unsigned>(answer.status));
        response_.set(http::field::content_type, answer.content_type);
        response_.set(http::field::server, "crmsync");
        response_.body() = answer.body;
        response_.keep_alive(keep_alive);
        response_.prepare_payload();
        stream_.expires_after(state_.limits.write_timeout);
        http::async_write(stream_, response_, [self = shared_from_this(), keep_alive](beast::error_code ec, std::size_t) {
            if (ec) return;
            if (keep_alive) return self->read_header();
            // Closing with unread bytes pending makes the kernel send a reset, which can wipe
            // the answer out of the client's buffers before it reads it (a 413 would look
            // like a broken connection). Say we are done, then read and drop what the client
            // is still sending, for a little while.
            beast::error_code ignored;
            self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
            self->stream_.expires_after(kLinger);
            self->drain();
        });
    }

    void drain() {
        if (!discard_) discard_ = std::make_unique<char[]>(kDiscardSize);
        stream_.async_read_some(asio::buffer(discard_.get(), kDiscardSize),
                                [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                                    self->drained_ += n;
                                    if (!ec && self->drained_ < kMaxDrained) self->drain();
                                });
    }

    static constexpr std::chrono::seconds kLinger{2};
    static constexpr size_t kMaxDrained = 16 << 20;
    static constexpr size_t kDiscardSize = 16 * 1024;
    std::unique_ptr<char[]> discard_;
    size_t drained_ = 0;

    beast::tcp_stream stream_;
    HttpListener::State& state_;
    std::string peer_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    http::response<http::string_body> response_;
};

}  // namespace

void HttpListener::State::accept() {
    io->acceptor.async_accept(asio::make_strand(io->ioc), [this](beast::error_code ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted || !io->acceptor.is_open()) return;
        if (ec) {
            // Out of descriptors or similar: the open connections go on; try again shortly.
            io->backoff.expires_after(std::chrono::milliseconds(100));
            io->backoff.async_wait([this](beast::error_code) { accept(); });
            return;
        }
        beast::error_code peer_ec;
        auto remote = socket.remote_endpoint(peer_ec);
        std::string peer = peer_ec ? std::string("?") : remote.address().to_string();
        if (!admit(peer)) {
            refused("too_many_connections");
            socket.close(peer_ec);
        } else {
            socket.set_option(tcp::no_delay(true), peer_ec);  // small answers: no Nagle delay
            std::make_shared<Session>(std::move(socket), *this, peer)->start();
        }
        accept();
    });
}

HttpListener::HttpListener(Handler handler, ListenerLimits limits, RefusalCounter refused) : state_(std::make_shared<State>()) {
    state_->handler = std::move(handler);
    state_->limits = limits;
    state_->refused = std::move(refused);
}

HttpListener::~HttpListener() { stop(); }

Status HttpListener::start(const std::string& host, int port) {
    auto& s = *state_;
    beast::error_code ec;
    tcp::resolver resolver(s.io->ioc);
    auto found = resolver.resolve(host, std::to_string(port), tcp::resolver::numeric_service, ec);
    if (ec || found.empty()) return Status::config("cannot listen on " + host + ": not an address of this machine");
    tcp::endpoint endpoint = *found.begin();
    auto& acceptor = s.io->acceptor;
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return Status::config("cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message());
    s.port = acceptor.local_endpoint().port();
    s.accept();
    for (int i = 0; i < std::max(1, s.limits.threads); ++i) s.threads.emplace_back([io = s.io.get()] { io->ioc.run(); });
    return Status::ok();
}

int HttpListener::port() const { return state_->port; }

void HttpListener::stop() {
    auto& s = *state_;
    if (s.stopped) return;
    s.stopped = true;
    s.io->ioc.stop();  // a handler in progress finishes; nothing new starts
    for (auto& t : s.threads)
        if (t.joinable()) t.join();
    s.io.reset();  // closes the listening socket and every connection
}

}  // namespace crmsync
