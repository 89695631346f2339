// The TCP backend's point-to-point transfers, moved without blocking
// (tcp.cpp has the mesh of connections and the collectives).
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

#include "runtime/coll/detail/tcp.hpp"

namespace troupe::coll {

using namespace tcp_detail;
using clock = std::chrono::steady_clock;

// Point to point, non-blocking: every call moves what the sockets take and
// give now, and never waits.
void TcpGroup::p2p_take(Transfer& t, std::uint32_t dtype, std::uint64_t count) {
  if (dtype != static_cast<std::uint32_t>(t.dtype) || count != t.n)
    fail_with(static_cast<std::int32_t>(spec_.rank),
              fmt::format("rank {} sends {} x {} but rank {} receives {} x {} (tag {})", t.peer,
                          to_string(static_cast<DType>(dtype)), count, spec_.rank, to_string(t.dtype), t.n, t.tag));
}

void TcpGroup::p2p_read(std::uint32_t peer, std::span<Transfer* const> heads) {
  PeerP2P& pp = p2p_[peer];
  Incoming& in = pp.in;
  const int fd = fds_[peer];
  // A new message is read only while a receive from this peer still waits
  // for one: what follows the transfers on the connection (the peer's next
  // collective) stays there for the collective.
  auto wanted = [&]() {
    for (Transfer* t : heads)
      if (!t->is_send && t->peer == peer && !t->done && pp.inbox[t->tag].empty()) return true;
    return false;
  };
  for (;;) {
    if (!in.have_header && in.hdr_bytes.empty() && !wanted()) return;
    if (!in.have_header) {
      if (in.hdr_bytes.size() < sizeof(Header)) {
        const std::size_t have = in.hdr_bytes.size();
        in.hdr_bytes.resize(sizeof(Header));
        ssize_t rd = ::recv(fd, in.hdr_bytes.data() + have, sizeof(Header) - have, 0);
        if (rd <= 0) {
          in.hdr_bytes.resize(have);
          if (rd < 0 && (errno == EAGAIN || errno == EINTR)) return;
          fail_with(static_cast<std::int32_t>(peer), fmt::format("rank {}'s connection broke ({}): it died or left", peer,
                                                                 rd < 0 ? std::strerror(errno) : "closed"));
        }
        in.hdr_bytes.resize(have + static_cast<std::size_t>(rd));
        if (in.hdr_bytes.size() < sizeof(Header)) return;
      }
      Header h;
      std::memcpy(&h, in.hdr_bytes.data(), sizeof h);
      if (h.magic != kMagic) fail_with(static_cast<std::int32_t>(peer), fmt::format("rank {} sent a corrupt message", peer));
      if (h.kind == kAbort) {
        abort(static_cast<std::int32_t>(peer), fmt::format("rank {} aborted the group", peer));
        fail();
      }
      if (h.kind != k_send || h.seq != kPointToPoint || h.op >= kP2PTags)
        fail_with(static_cast<std::int32_t>(peer),
                  fmt::format("ranks disagree: rank {} sends a collective's {} while rank {} waits for point-to-point "
                              "transfers",
                              peer, kind_name(h.kind), spec_.rank));
      in.have_header = true;
      in.tag = h.op;
      in.dtype = h.dtype;
      in.count = h.count;
      in.len = h.len;
      in.got = 0;
      in.into = nullptr;
      // Straight into the waiting receive on this tag, if its inbox is empty.
      if (pp.inbox[in.tag].empty())
        for (Transfer* t : heads)
          if (!t->is_send && t->peer == peer && t->tag == in.tag && !t->done) {
            p2p_take(*t, in.dtype, in.count);
            in.into = t;
          }
      if (!in.into) in.parked.assign(in.len, std::byte{});
    }
    while (in.got < in.len) {
      std::byte* dst = in.into ? static_cast<std::byte*>(in.into->buf) : in.parked.data();
      ssize_t rd = ::recv(fd, dst + in.got, in.len - in.got, 0);
      if (rd > 0) {
        in.got += static_cast<std::uint64_t>(rd);
        if (in.into) in.into->progress = in.got;
        continue;
      }
      if (rd < 0 && (errno == EAGAIN || errno == EINTR)) return;
      fail_with(static_cast<std::int32_t>(peer), fmt::format("rank {}'s connection broke ({}): it died or left", peer,
                                                             rd < 0 ? std::strerror(errno) : "closed"));
    }
    if (in.into) {
      in.into->done = true;
    } else {
      pp.inbox[in.tag].push_back(std::move(in.parked));
      pp.inbox_desc[in.tag].emplace_back(in.dtype, in.count);
    }
    in = Incoming{};
  }
}

void TcpGroup::p2p_progress(std::span<Transfer* const> heads) {
  if (failed_.load()) fail();
  if (cancel_ && cancel_->load(std::memory_order_relaxed))
    fail_with(static_cast<std::int32_t>(spec_.rank), fmt::format("rank {} left the group", spec_.rank));
  if (p2p_.size() != spec_.world) p2p_.resize(spec_.world);
  const auto now = clock::now();
  for (Transfer* t : heads)
    if (t->since == clock::time_point{}) t->since = now;
  // Receives: first from the inboxes, then whatever the connections hold.
  auto& read = p2p_read_;
  read.assign(spec_.world, 0);
  for (Transfer* t : heads) {
    if (t->is_send || t->done) continue;
    auto& box = p2p_[t->peer].inbox[t->tag];
    if (!box.empty()) {
      auto [dtype, count] = p2p_[t->peer].inbox_desc[t->tag].front();
      p2p_take(*t, dtype, count);
      copy_bytes(t->buf, box.front().data(), box.front().size());
      box.erase(box.begin());
      p2p_[t->peer].inbox_desc[t->tag].erase(p2p_[t->peer].inbox_desc[t->tag].begin());
      t->done = true;
      t->since = now;
      continue;
    }
    read[t->peer] = 1;
  }
  for (std::uint32_t p = 0; p < spec_.world; ++p)
    if (read[p]) p2p_read(p, heads);
  // Sends: one message at a time per connection.
  for (Transfer* t : heads) {
    if (!t->is_send || t->done) continue;
    PeerP2P& pp = p2p_[t->peer];
    if (pp.sending && pp.sending != t) continue;
    pp.sending = t;
    const std::size_t bytes = t->n * size_of(t->dtype), total = sizeof(Header) + bytes;
    const Header h{kMagic, k_send, kPointToPoint, static_cast<std::uint32_t>(t->dtype), t->tag, t->n, -1, spec_.rank, bytes};
    while (t->progress < total) {
      const bool hdr = t->progress < sizeof(Header);
      const char* src = hdr ? reinterpret_cast<const char*>(&h) + t->progress
                            : static_cast<const char*>(t->buf) + (t->progress - sizeof(Header));
      const std::size_t len = hdr ? sizeof(Header) - t->progress : total - t->progress;
      ssize_t w = ::send(fds_[t->peer], src, len, MSG_NOSIGNAL);
      if (w > 0) {
        t->progress += static_cast<std::size_t>(w);
        t->since = now;
        continue;
      }
      if (w < 0 && (errno == EAGAIN || errno == EINTR)) break;
      fail_with(static_cast<std::int32_t>(t->peer), fmt::format("rank {}'s connection broke ({}): it died or left",
                                                                t->peer, w < 0 ? std::strerror(errno) : "closed"));
    }
    if (t->progress == total) {
      t->done = true;
      pp.sending = nullptr;
    }
  }
  for (Transfer* t : heads)
    if (!t->done && now - t->since >= std::chrono::milliseconds(spec_.timeout_ms))
      fail_with(static_cast<std::int32_t>(t->peer),
                fmt::format("timed out after {} ms waiting for rank {} to {} (tag {}, {} x {})", spec_.timeout_ms,
                            t->peer,
                            t->is_send ? fmt::format("receive what rank {} sends", spec_.rank)
                                       : fmt::format("send what rank {} receives", spec_.rank),
                            t->tag, to_string(t->dtype), t->n));
}

}  // namespace troupe::coll
