#pragma once
// One HTTP exchange with a server on loopback (the head's /metrics): sends
// `request` as given, reads until the server closes, returns everything.
#include <array>
#include <cstdint>
#include <string>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

namespace troupe::test {

inline std::string http_exchange(std::uint16_t port, const std::string& request) {
  namespace asio = boost::asio;
  asio::io_context io;
  asio::ip::tcp::socket s(io);
  s.connect({asio::ip::make_address("127.0.0.1"), port});
  boost::system::error_code ec;
  asio::write(s, asio::buffer(request), ec);
  std::string out;
  std::array<char, 8192> buf;
  while (!ec) out.append(buf.data(), s.read_some(asio::buffer(buf), ec));
  return out;
}

/// GET `path` over HTTP/1.1.
inline std::string http_get(std::uint16_t port, const std::string& path) {
  return http_exchange(port, "GET " + path + " HTTP/1.1\r\nHost: test\r\n\r\n");
}

}  // namespace troupe::test
