// HttpClient: a small blocking HTTP/1.1 client for loopback services (tests, benchmarks, the RL
// side calling a sandbox or model server). Keeps one keep-alive connection and reconnects once
// when the server closed it. Not thread-safe: one client per thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "tidal/core/status.h"

namespace tidal::http {

struct ClientResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;                            // chunked bodies arrive joined
};

class HttpClient {
 public:
  HttpClient(std::string host, uint16_t port);
  ~HttpClient();
  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;

  // Sets "Authorization: Bearer <key>" on every request (empty: none).
  void set_api_key(std::string key) { api_key_ = std::move(key); }

  // Sends one request and reads the whole response. kIoError when the connection fails.
  Expected<ClientResponse> request(const std::string& method, const std::string& target,
                                   const std::string& body = {},
                                   const std::map<std::string, std::string>& headers = {});
  // Drops the connection (the next request opens a new one).
  void close();

 private:
  struct Conn;
  std::string host_;
  uint16_t port_;
  std::string api_key_;
  std::unique_ptr<Conn> conn_;
};

}  // namespace tidal::http
