// An in-process head on loopback: the handshake, status, and hostile peers.
#include <catch2/catch.hpp>

#include <random>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "runtime/cluster/connect.hpp"
#include "runtime/cluster/head.hpp"
#include "runtime/errors.hpp"

using namespace troupe;
namespace asio = boost::asio;

namespace {

struct LiveHead {
  asio::io_context io;
  std::shared_ptr<cluster::Head> head;
  std::thread runner;
  std::string token = "test-token-0123456789";
  explicit LiveHead(std::chrono::milliseconds handshake = std::chrono::milliseconds(500)) {
    cluster::HeadOptions o;
    o.token = token;
    o.handshake_timeout = handshake;
    head = std::make_shared<cluster::Head>(io, o);
    head->add_local_node({.total = {{"CPU", 4}}}, "test-host");
    head->start();
    runner = std::thread([this] { io.run(); });
  }
  ~LiveHead() {
    head->stop();  // closes the listener, the timer and every connection: run() then returns
    runner.join();
  }
  cluster::Address addr() const { return {"127.0.0.1", head->port()}; }
};

// Sends raw bytes to the head, then reads until it hangs up (or 2 s).
void hostile_peer(std::uint16_t port, const std::vector<std::uint8_t>& bytes) {
  asio::io_context io;
  asio::ip::tcp::socket s(io);
  s.connect({asio::ip::make_address("127.0.0.1"), port});
  boost::system::error_code ec;
  asio::write(s, asio::buffer(bytes), ec);
  s.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  std::array<char, 256> buf;
  while (!ec) s.read_some(asio::buffer(buf), ec);
}

}  // namespace

TEST_CASE("a client with the token gets the cluster status", "[cluster]") {
  LiveHead h;
  auto view = cluster::query_status(h.addr(), h.token);
  REQUIRE(view.nodes.size() == 1);
  CHECK(view.nodes[0].is_head);
  CHECK(view.nodes[0].alive);
  CHECK(view.nodes[0].total.at("CPU") == 4);
  CHECK(view.head_address == h.head->address());
}

TEST_CASE("a wrong token is refused on both sides, without sending the token", "[cluster]") {
  LiveHead h;
  CHECK_THROWS_WITH(cluster::query_status(h.addr(), "not-the-token"), Catch::Contains("does not know the cluster token"));
  // The client gives up first; the head notices the hang-up a moment later.
  for (int i = 0; i < 200 && h.head->dropped_peers() < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CHECK(h.head->dropped_peers() == 1);
  CHECK(cluster::query_status(h.addr(), h.token).nodes.size() == 1);
}

TEST_CASE("an unreachable head is a clear error, not a hang", "[cluster]") {
  CHECK_THROWS_WITH(cluster::query_status({"127.0.0.1", 1}, "x", std::chrono::milliseconds(500)),
                    Catch::Contains("cannot reach the head at 127.0.0.1:1"));
}

TEST_CASE("random, truncated and oversized frames are dropped; the head serves on", "[cluster][fuzz]") {
  LiveHead h;
  std::mt19937 rng(4242);
  std::size_t peers = 0;
  // Oversized: one segment claiming 4 GiB.
  hostile_peer(h.head->port(), {0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff});
  ++peers;
  // Absurd segment count.
  hostile_peer(h.head->port(), {0xff, 0xff, 0xff, 0x7f, 1, 0, 0, 0});
  ++peers;
  // Truncated: promises 100 words, sends 3.
  hostile_peer(h.head->port(), {0, 0, 0, 0, 100, 0, 0, 0, 1, 2, 3});
  ++peers;
  // Random junk of random lengths.
  for (int i = 0; i < 40; ++i) {
    std::vector<std::uint8_t> junk(rng() % 200);
    for (auto& b : junk) b = static_cast<std::uint8_t>(rng());
    hostile_peer(h.head->port(), junk);
    ++peers;
  }
  // A peer that hangs up without a word.
  hostile_peer(h.head->port(), {});
  ++peers;
  // A peer that connects and stays silent is cut off by the handshake timeout.
  {
    asio::io_context io;
    asio::ip::tcp::socket s(io);
    s.connect({asio::ip::make_address("127.0.0.1"), h.head->port()});
    auto t0 = std::chrono::steady_clock::now();
    boost::system::error_code ec;
    std::array<char, 16> buf;
    while (!ec) s.read_some(asio::buffer(buf), ec);
    CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(400));
    ++peers;
  }
  CHECK(h.head->dropped_peers() == peers);
  auto view = cluster::query_status(h.addr(), h.token);
  CHECK(view.nodes.size() == 1);
}
