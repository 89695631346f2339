#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <sys/socket.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/strand.hpp>

#include <fmt/format.h>

#include "runtime/cluster/address.hpp"
#include "runtime/cluster/resources.hpp"
#include "runtime/errors.hpp"
#include "runtime/net/auth.hpp"
#include "runtime/net/connection.hpp"
#include "runtime/net/frame.hpp"
#include "runtime/net/handshake.hpp"
#include "runtime/net/sha256.hpp"

using namespace troupe;

namespace {
std::string hex(const net::Digest& d) {
  std::string s;
  for (auto b : d) s += fmt::format("{:02x}", b);
  return s;
}
std::span<const std::uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
}  // namespace

TEST_CASE("SHA-256 and HMAC-SHA256 match the published vectors", "[net]") {
  CHECK(hex(net::sha256(bytes("abc"))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(hex(net::sha256(bytes(""))) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  std::string million(1000000, 'a');
  CHECK(hex(net::sha256(bytes(million))) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // RFC 4231 test case 2.
  CHECK(hex(net::hmac_sha256(bytes("Jefe"), bytes("what do ya want for nothing?"))) ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE("the two handshake proofs differ and depend on every input", "[net]") {
  std::vector<std::uint8_t> a(16, 1), b(16, 2);
  auto s = net::server_proof("tok", a, b);
  CHECK(s != net::client_proof("tok", b, a));  // a client proof cannot be replayed as a server proof
  CHECK(s != net::server_proof("tok2", a, b));
  CHECK(s != net::server_proof("tok", b, a));
  CHECK(net::equal_digest(s, net::server_proof("tok", a, b)));
}

TEST_CASE("token files are private and checked", "[net]") {
  auto dir = std::filesystem::temp_directory_path() / ("troupe-tok-" + std::to_string(::getpid()));
  auto path = (dir / "sub" / "cluster.token").string();
  auto token = net::make_token();
  CHECK(token.size() == 64);
  net::write_token_file(path, token);
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(net::read_token_file(path) == token);
  ::chmod(path.c_str(), 0644);
  CHECK_THROWS_WITH(net::read_token_file(path), Catch::Contains("readable by others"));
  CHECK_THROWS_WITH(net::read_token_file((dir / "missing").string()), Catch::Contains("cannot read"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("frame sizes are checked before allocating", "[net]") {
  capnp::word first{};
  auto* u = reinterpret_cast<std::uint32_t*>(&first);
  u[0] = 0;  // one segment
  u[1] = 10;
  CHECK(net::table_words(first) == 1);
  CHECK(net::frame_words(kj::arrayPtr(&first, 1)) == 11);
  u[1] = 0xffffffff;  // 32 GiB segment
  CHECK_THROWS_WITH(net::frame_words(kj::arrayPtr(&first, 1)), Catch::Contains("limit"));
  u[0] = 100000;  // absurd segment count
  CHECK_THROWS_WITH(net::table_words(first), Catch::Contains("segments"));
  auto garbage = kj::heapArray<capnp::word>(4);
  std::memset(garbage.begin(), 0xff, 32);
  CHECK_THROWS_AS(net::Frame(std::move(garbage)), DecodeError);
}

TEST_CASE("resource and address specs give clear errors", "[net]") {
  auto r = cluster::parse_resources("ssd=1, license=2.5");
  CHECK(r.at("ssd") == 1);
  CHECK(r.at("license") == 2.5);
  CHECK(cluster::parse_resources("").empty());
  CHECK_THROWS_WITH(cluster::parse_resources("ssd"), Catch::Contains("expected name=amount"));
  CHECK_THROWS_WITH(cluster::parse_resources("ssd=-1"), Catch::Contains("not a non-negative number"));
  CHECK_THROWS_WITH(cluster::parse_resources("9x=1"), Catch::Contains("not a valid name"));
  CHECK_THROWS_WITH(cluster::parse_resources("a=1,a=2"), Catch::Contains("given twice"));
  auto local = cluster::detect_local_resources();
  CHECK(local.at("CPU") >= 1);
  CHECK(local.count("GPU") == 1);
  auto a = cluster::parse_address("127.0.0.1:6379");
  CHECK(a.host == "127.0.0.1");
  CHECK(a.port == 6379);
  CHECK_THROWS_WITH(cluster::parse_address("localhost"), Catch::Contains("HOST:PORT"));
  CHECK_THROWS_WITH(cluster::parse_address("h:99999"), Catch::Contains("not a port"));
}

namespace {
// Frame k of sender t: a call whose id names (t, k) and whose arguments are
// a size and byte pattern derived from both. Sizes mix frames copied into the
// writer's batch buffer (small), written in place (above 4 KiB) and spread
// over several Cap'n Proto segments (above the 512-byte first segment).
constexpr unsigned kLoneSender = 100;  // its frame 0 is 1 MiB, sent alone
std::size_t payload_size(unsigned t, unsigned k) {
  if (t == kLoneSender) return k == 0 ? 1u << 20 : 10;
  switch ((t + k) % 7) {
    case 0: return 0;
    case 1: return 3;
    case 2: return 600;
    case 3: return 5000;
    case 4: return 200000;
    default: return 40 + k % 100;
  }
}
std::uint8_t payload_byte(unsigned t, unsigned k, std::size_t i) { return static_cast<std::uint8_t>(t * 31 + k * 7 + i); }
kj::Array<capnp::word> test_frame(unsigned t, unsigned k) {
  std::vector<kj::byte> args(payload_size(t, k));
  for (std::size_t i = 0; i < args.size(); ++i) args[i] = payload_byte(t, k, i);
  return net::envelope_of<proto::WorkerEnvelope>([&](proto::WorkerEnvelope::Builder e) {
    auto c = e.initCall();
    c.setCallId((std::uint64_t{t} << 32) | k);
    c.setArgs(kj::ArrayPtr<const kj::byte>(args.data(), args.size()));
  });
}
}  // namespace

TEST_CASE("frames sent from many threads arrive whole and in each sender's order, and finish() sends all", "[net]") {
  // Also covers a lone frame too large for the socket buffer, written partly
  // on the sender's thread and finished by the writer.
  namespace asio = boost::asio;
  asio::io_context io;
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  auto make = [&](int fd, const char* name) {
    asio::local::stream_protocol::socket s(asio::make_strand(io));
    s.assign(asio::local::stream_protocol(), fd);
    return net::Connection::make(net::Connection::Socket(std::move(s)), name);
  };
  auto tx = make(fds[0], "tx"), rx = make(fds[1], "rx");

  constexpr unsigned kSenders = 4, kFrames = 600;
  std::mutex mu;
  std::vector<unsigned> next(kSenders + 1, 0);
  std::vector<std::string> problems;
  std::promise<std::string> rx_closed;
  rx->start(
      [&](net::Frame f) {
        auto c = f.root<proto::WorkerEnvelope>().getCall();
        auto t = static_cast<unsigned>(c.getCallId() >> 32);
        const auto k = static_cast<unsigned>(c.getCallId());
        auto args = c.getArgs();
        std::lock_guard lock(mu);
        if (t == kLoneSender) t = kSenders;
        if (t > kSenders || k != next[t]) {
          problems.push_back(fmt::format("sender {} frame {} out of order", t, k));
          return;
        }
        ++next[t];
        const unsigned sender = t == kSenders ? kLoneSender : t;
        bool ok = args.size() == payload_size(sender, k);
        for (std::size_t i = 0; ok && i < args.size(); ++i) ok = args[i] == payload_byte(sender, k, i);
        if (!ok) problems.push_back(fmt::format("sender {} frame {}: wrong payload", t, k));
      },
      [&](const std::string& why) { rx_closed.set_value(why); });
  std::promise<std::string> tx_closed;
  tx->start([](net::Frame) {}, [&](const std::string& why) { tx_closed.set_value(why); });

  std::vector<std::thread> pool;
  for (int i = 0; i < 2; ++i) pool.emplace_back([&] { io.run(); });
  std::vector<std::thread> senders;
  for (unsigned t = 0; t < kSenders; ++t)
    senders.emplace_back([&, t] {
      for (unsigned k = 0; k < kFrames; ++k) {
        tx->send(test_frame(t, k));
        if (k % 97 == 0) std::this_thread::yield();  // let the writer fall asleep now and then
      }
    });
  for (auto& s : senders) s.join();
  // A frame sent after a pause is written on the sending thread; one larger
  // than the socket's buffer is only partly written there, and the writer
  // must send the rest before the burst queued behind it.
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  for (unsigned k = 0; k < 50; ++k) tx->send(test_frame(kLoneSender, k));
  tx->finish();  // everything queued goes out first, then the socket closes
  auto tx_fut = tx_closed.get_future();
  auto rx_fut = rx_closed.get_future();
  REQUIRE(tx_fut.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
  REQUIRE(rx_fut.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
  CHECK(tx_fut.get() == "finished");
  CHECK(rx_fut.get() == "peer closed the connection");
  tx->send(test_frame(0, kFrames));  // after close: dropped, not queued forever
  for (auto& th : pool) th.join();
  std::lock_guard lock(mu);
  CHECK(problems.empty());
  if (!problems.empty()) FAIL_CHECK(problems.front());
  std::vector<unsigned> want(kSenders, kFrames);
  want.push_back(50);
  CHECK(next == want);
}
