#include "tidal/http/http_client.h"

#include <algorithm>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace tidal::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = net::ip::tcp;

struct HttpClient::Conn {
  net::io_context ioc;
  tcp::socket socket{ioc};
  beast::flat_buffer buffer;
};

HttpClient::HttpClient(std::string host, uint16_t port) : host_(std::move(host)), port_(port) {}
HttpClient::~HttpClient() { close(); }
HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;

void HttpClient::close() {
  if (conn_) {
    beast::error_code ec;
    conn_->socket.shutdown(tcp::socket::shutdown_both, ec);
    conn_->socket.close(ec);
    conn_.reset();
  }
}

Expected<ClientResponse> HttpClient::request(const std::string& method, const std::string& target,
                                             const std::string& body,
                                             const std::map<std::string, std::string>& headers) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool fresh = false;
    beast::error_code ec;
    if (!conn_) {
      conn_ = std::make_unique<Conn>();
      auto address = net::ip::make_address(host_, ec);
      if (!ec) conn_->socket.connect(tcp::endpoint(address, port_), ec);
      if (ec) {
        conn_.reset();
        return io_error("connect to " + host_ + ":" + std::to_string(port_) + ": " + ec.message());
      }
      conn_->socket.set_option(tcp::no_delay(true), ec);
      fresh = true;
    }
    bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(method), target, 11};
    req.set(bhttp::field::host, host_ + ":" + std::to_string(port_));
    if (!api_key_.empty()) req.set(bhttp::field::authorization, "Bearer " + api_key_);
    bool has_type = false;
    for (const auto& [k, v] : headers) {
      req.set(k, v);
      std::string lk = k;
      std::transform(lk.begin(), lk.end(), lk.begin(), ::tolower);
      has_type |= lk == "content-type";
    }
    if (!body.empty() && !has_type) req.set(bhttp::field::content_type, "application/json");
    req.body() = body;
    req.keep_alive(true);
    req.prepare_payload();
    bhttp::write(conn_->socket, req, ec);
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(std::numeric_limits<uint64_t>::max());
    if (!ec) bhttp::read(conn_->socket, conn_->buffer, parser, ec);
    if (ec) {
      close();
      // A kept-alive connection the server closed meanwhile: retry once on a new one.
      if (!fresh) continue;
      return io_error(method + " " + target + ": " + ec.message());
    }
    auto& res = parser.get();
    ClientResponse out;
    out.status = static_cast<int>(res.result_int());
    for (const auto& field : res) {
      std::string name(field.name_string());
      std::transform(name.begin(), name.end(), name.begin(), ::tolower);
      out.headers[name] = std::string(field.value());
    }
    out.body = std::move(res.body());
    if (!res.keep_alive()) close();
    return out;
  }
  return io_error(method + " " + target + ": connection closed by server");
}

}  // namespace tidal::http
