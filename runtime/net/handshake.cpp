#include "runtime/net/handshake.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "runtime/errors.hpp"
#include "runtime/net/auth.hpp"
#include "runtime/net/within.hpp"

namespace troupe::net {

namespace {

constexpr std::size_t kNonceBytes = 16;

std::vector<std::uint8_t> bytes_of(capnp::Data::Reader d) { return {d.begin(), d.end()}; }
kj::ArrayPtr<const kj::byte> as_data(const Digest& d) { return {d.data(), d.size()}; }
kj::ArrayPtr<const kj::byte> as_data(const std::vector<std::uint8_t>& v) { return {v.data(), v.size()}; }

proto::Envelope::Which expect(const Frame& f, proto::Envelope::Which want, const char* what) {
  auto env = f.root<proto::Envelope>();
  if (env.which() == proto::Envelope::ERROR)
    throw Error(fmt::format("{}: peer refused: {}", what, env.getError().getMessage().cStr()));
  if (env.which() != want) throw Error(fmt::format("{}: unexpected message", what));
  return want;
}

asio::awaitable<proto::Role> accept_steps(std::shared_ptr<Connection> c, std::string token) {
  Frame hello_frame = co_await c->read_frame();
  expect(hello_frame, proto::Envelope::HELLO, "handshake");
  auto hello = hello_frame.root<proto::Envelope>().getHello();
  if (hello.getVersion() != kProtocolVersion)
    throw Error(fmt::format("handshake: protocol version {} (this side speaks {})", hello.getVersion(),
                            kProtocolVersion));
  auto client_nonce = bytes_of(hello.getNonce());
  if (client_nonce.size() < kNonceBytes) throw Error("handshake: nonce too short");
  const proto::Role role = hello.getRole();
  auto server_nonce = random_bytes(kNonceBytes);
  auto sproof = server_proof(token, client_nonce, server_nonce);
  co_await c->write_frame(envelope([&](proto::Envelope::Builder e) {
    auto ch = e.initChallenge();
    ch.setNonce(as_data(server_nonce));
    ch.setProof(as_data(sproof));
  }));
  Frame proof_frame = co_await c->read_frame();
  expect(proof_frame, proto::Envelope::PROOF, "handshake");
  auto got = proof_frame.root<proto::Envelope>().getProof().getProof();
  auto want = client_proof(token, server_nonce, client_nonce);
  if (!equal_digest({got.begin(), got.size()}, want)) {
    co_await c->write_frame(envelope([](proto::Envelope::Builder e) {
      e.initError().setMessage("authentication failed: wrong cluster token");
    }));
    throw Error("handshake: wrong cluster token");
  }
  co_await c->write_frame(envelope([](proto::Envelope::Builder e) {
    e.initWelcome().setHeadVersion(kProtocolVersion);
  }));
  co_return role;
}

asio::awaitable<void> connect_steps(std::shared_ptr<Connection> c, std::string token, proto::Role role) {
  auto client_nonce = random_bytes(kNonceBytes);
  co_await c->write_frame(envelope([&](proto::Envelope::Builder e) {
    auto h = e.initHello();
    h.setVersion(kProtocolVersion);
    h.setRole(role);
    h.setNonce(as_data(client_nonce));
  }));
  Frame ch_frame = co_await c->read_frame();
  expect(ch_frame, proto::Envelope::CHALLENGE, "handshake");
  auto ch = ch_frame.root<proto::Envelope>().getChallenge();
  auto server_nonce = bytes_of(ch.getNonce());
  auto want = server_proof(token, client_nonce, server_nonce);
  auto got = ch.getProof();
  if (server_nonce.size() < kNonceBytes || !equal_digest({got.begin(), got.size()}, want))
    throw Error("handshake: the server does not know the cluster token (wrong token or wrong address)");
  auto proof = client_proof(token, server_nonce, client_nonce);
  co_await c->write_frame(envelope([&](proto::Envelope::Builder e) { e.initProof().setProof(as_data(proof)); }));
  Frame welcome = co_await c->read_frame();
  expect(welcome, proto::Envelope::WELCOME, "handshake");
}

}  // namespace

asio::awaitable<proto::Role> accept_handshake(std::shared_ptr<Connection> c, std::string token,
                                              std::chrono::milliseconds limit) {
  co_return co_await within(accept_steps(std::move(c), std::move(token)), limit, "handshake");
}

asio::awaitable<void> connect_handshake(std::shared_ptr<Connection> c, std::string token, proto::Role role,
                                        std::chrono::milliseconds limit) {
  // awaitable operators need a value: wrap the void op.
  auto op = [](std::shared_ptr<Connection> c, std::string t, proto::Role r) -> asio::awaitable<bool> {
    co_await connect_steps(std::move(c), std::move(t), r);
    co_return true;
  };
  co_await within(op(std::move(c), std::move(token), role), limit, "handshake");
}

}  // namespace troupe::net
