#include "runtime/coll/detail/tcp.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

#include "runtime/coll/detail/store.hpp"

namespace troupe::coll {

using namespace tcp_detail;

namespace {

using clock = std::chrono::steady_clock;
constexpr std::size_t kSegment = 1u << 20;



std::string key_of(std::uint64_t uid, std::uint32_t rank) { return fmt::format("coll/{:016x}/{}", uid, rank); }

void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Blocking write/read of a small handshake before the sockets go non-blocking.
bool write_all(int fd, const void* p, std::size_t n) {
  auto* b = static_cast<const char*>(p);
  while (n) {
    ssize_t w = ::send(fd, b, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    b += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}
bool read_all(int fd, void* p, std::size_t n) {
  auto* b = static_cast<char*>(p);
  while (n) {
    ssize_t r = ::recv(fd, b, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    b += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

}  // namespace


TcpGroup::TcpGroup(const GroupSpec& spec, const std::atomic<bool>* cancel) : spec_(spec), cancel_(cancel) {
  const auto W = spec_.world, me = spec_.rank;
  fds_.assign(W, -1);
  wake_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  const auto limit = std::chrono::milliseconds(spec_.timeout_ms);
  if (W == 1) return;
  // Listen where peers can reach this rank, publish it, dial the higher ranks.
  int ls = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  const std::string host = spec_.host.empty() ? "127.0.0.1" : spec_.host;
  if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) {
    ::close(ls);
    throw CollectiveError(fmt::format("group '{}': '{}' is not an IPv4 address to listen on", spec_.name, host));
  }
  if (::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(ls, static_cast<int>(W)) != 0) {
    int e = errno;
    ::close(ls);
    throw CollectiveError(fmt::format("group '{}': cannot listen on {}: {}", spec_.name, host, std::strerror(e)));
  }
  socklen_t alen = sizeof a;
  ::getsockname(ls, reinterpret_cast<sockaddr*>(&a), &alen);
  store_set(key_of(spec_.uid, me), fmt::format("{}:{}", host, ntohs(a.sin_port)));
  auto cleanup = [&]() {
    ::close(ls);
    for (auto& fd : fds_)
      if (fd >= 0) ::close(fd), fd = -1;
  };
  try {
    for (std::uint32_t j = me + 1; j < W; ++j) {
      const std::string where = store_get(key_of(spec_.uid, j), limit);
      const auto colon = where.rfind(':');
      sockaddr_in p{};
      p.sin_family = AF_INET;
      p.sin_port = htons(static_cast<std::uint16_t>(std::stoi(where.substr(colon + 1))));
      ::inet_pton(AF_INET, where.substr(0, colon).c_str(), &p.sin_addr);
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (::connect(fd, reinterpret_cast<sockaddr*>(&p), sizeof p) != 0) {
        int e = errno;
        ::close(fd);
        throw CollectiveError(
            fmt::format("group '{}': rank {} cannot reach rank {} at {}: {}", spec_.name, me, j, where, std::strerror(e)));
      }
      const std::uint64_t hello[2] = {spec_.uid, me};
      write_all(fd, hello, sizeof hello);
      fds_[j] = fd;
    }
    const auto deadline = clock::now() + limit;
    for (std::uint32_t got = 0; got < me;) {
      pollfd pf{ls, POLLIN, 0};
      int r = ::poll(&pf, 1, 100);
      if (cancel_ && cancel_->load()) throw CollectiveError(fmt::format("group '{}': left while joining", spec_.name));
      if (clock::now() > deadline)
        throw CollectiveError(fmt::format("group '{}': timed out after {} ms waiting for lower ranks to connect",
                                          spec_.name, spec_.timeout_ms));
      if (r <= 0) continue;
      int fd = ::accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      std::uint64_t hello[2] = {0, 0};
      if (!read_all(fd, hello, sizeof hello) || hello[0] != spec_.uid || hello[1] >= me || fds_[hello[1]] >= 0) {
        ::close(fd);  // a stranger, or a stale peer of an older group
        continue;
      }
      fds_[hello[1]] = fd;
      ++got;
    }
  } catch (...) {
    cleanup();
    if (wake_ >= 0) ::close(wake_);
    throw;
  }
  ::close(ls);
  for (auto fd : fds_)
    if (fd >= 0) {
      set_nodelay(fd);
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
}

TcpGroup::~TcpGroup() {
  for (auto fd : fds_)
    if (fd >= 0) ::close(fd);
  if (wake_ >= 0) ::close(wake_);
}

void TcpGroup::abort(std::int32_t rank_at_fault, const std::string& why) noexcept {
  {
    std::lock_guard lock(mu_);
    if (failed_.load()) return;
    reason_ = why;
    failed_.store(1);
  }
  (void)rank_at_fault;
  std::uint64_t one = 1;
  if (wake_ >= 0) (void)!::write(wake_, &one, sizeof one);
}

std::string TcpGroup::failure() const {
  std::lock_guard lock(mu_);
  return failed_.load() ? reason_ : std::string();
}

void TcpGroup::fail() { throw CollectiveError(fmt::format("group '{}': {}", spec_.name, failure())); }

void TcpGroup::fail_with(std::int32_t rank, const std::string& why) {
  abort(rank, why);
  const std::string reason = failure();
  // Tell every peer, best effort: they fail with the same words.
  Header h{kMagic, kAbort, seq_, 0, 0, 0, 0, spec_.rank, reason.size()};
  for (auto fd : fds_) {
    if (fd < 0) continue;
    ::send(fd, &h, sizeof h, MSG_NOSIGNAL | MSG_DONTWAIT);
    ::send(fd, reason.data(), reason.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  fail();
}

std::string TcpGroup::show(const Op_& o) const {
  std::string s = fmt::format("{} {} x {}", kind_name(o.kind), to_string(static_cast<DType>(o.dtype)), o.count);
  if (o.kind == k_allreduce || o.kind == k_reduce_scatter) s += fmt::format(" ({})", to_string(static_cast<coll::Op>(o.op)));
  if (o.kind == k_broadcast) s += fmt::format(" from root {}", o.root);
  return s;
}

void TcpGroup::exchange(int to, const void* sbuf, std::size_t slen, int from, void* rbuf, std::size_t rlen,
                        const Op_& op, std::uint64_t seq) {
  if (failed_.load()) fail();
  if (seq == kCollective) seq = seq_;
  Header out{kMagic, op.kind, seq, op.dtype, op.op, op.count, op.root, spec_.rank, slen};
  Header in{};
  std::size_t sent = to >= 0 ? 0 : sizeof(Header) + slen, got = from >= 0 ? 0 : sizeof(Header) + rlen;
  std::size_t want = sizeof(Header) + rlen;
  const auto deadline = clock::now() + std::chrono::milliseconds(spec_.timeout_ms);
  const int to_fd = to >= 0 ? fds_[static_cast<std::size_t>(to)] : -1;
  const int from_fd = from >= 0 ? fds_[static_cast<std::size_t>(from)] : -1;
  while (sent < sizeof(Header) + slen || got < want) {
    pollfd pf[3];
    nfds_t n = 0;
    int si = -1, ri = -1;
    if (sent < sizeof(Header) + slen) pf[si = static_cast<int>(n++)] = {to_fd, POLLOUT, 0};
    if (got < want) pf[ri = static_cast<int>(n++)] = {from_fd, POLLIN, 0};
    pf[n++] = {wake_, POLLIN, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    if (left <= 0)
      fail_with(from >= 0 ? from : to, fmt::format("timed out after {} ms waiting for rank {} in {}", spec_.timeout_ms,
                                                   got < want ? from : to, kind_name(op.kind)));
    int r = ::poll(pf, n, static_cast<int>(std::min<long long>(left, 1000)));
    if (r < 0 && errno != EINTR) fail_with(spec_.rank, fmt::format("poll: {}", std::strerror(errno)));
    if (failed_.load()) fail_with(static_cast<std::int32_t>(spec_.rank), failure());
    if (si >= 0 && (pf[si].revents & (POLLOUT | POLLERR | POLLHUP))) {
      while (sent < sizeof(Header) + slen) {
        const bool hdr = sent < sizeof(Header);
        const char* p = hdr ? reinterpret_cast<const char*>(&out) + sent
                            : static_cast<const char*>(sbuf) + (sent - sizeof(Header));
        const std::size_t len = hdr ? sizeof(Header) - sent : sizeof(Header) + slen - sent;
        ssize_t w = ::send(to_fd, p, len, MSG_NOSIGNAL);
        if (w > 0) {
          sent += static_cast<std::size_t>(w);
          continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) break;
        fail_with(to, fmt::format("rank {}'s connection broke ({}): it died or left", to,
                                  w < 0 ? std::strerror(errno) : "closed"));
      }
    }
    if (ri >= 0 && (pf[ri].revents & (POLLIN | POLLERR | POLLHUP))) {
      while (got < want) {
        const bool hdr = got < sizeof(Header);
        char* p = hdr ? reinterpret_cast<char*>(&in) + got : static_cast<char*>(rbuf) + (got - sizeof(Header));
        const std::size_t len = hdr ? sizeof(Header) - got : want - got;
        ssize_t rd = ::recv(from_fd, p, len, 0);
        if (rd > 0) {
          got += static_cast<std::size_t>(rd);
          if (got == sizeof(Header)) {
            if (in.magic != kMagic) fail_with(from, fmt::format("rank {} sent a corrupt message", from));
            if (in.kind == kAbort) {
              std::string why(std::min<std::size_t>(in.len, 4096), '\0');
              // The reason follows the header; wait briefly for it.
              std::size_t have = 0;
              for (int tries = 0; have < why.size() && tries < 1000; ++tries) {
                ssize_t x = ::recv(from_fd, why.data() + have, why.size() - have, 0);
                if (x > 0) have += static_cast<std::size_t>(x);
                else if (x == 0) break;
                else ::usleep(1000);
              }
              why.resize(have);
              abort(from, why.empty() ? fmt::format("rank {} aborted the group", from) : why);
              fail();
            }
            const Op_ theirs{in.kind, in.dtype, in.count, in.op, in.root};
            if (in.seq != seq || theirs.kind != op.kind || theirs.dtype != op.dtype || theirs.count != op.count ||
                theirs.op != op.op || theirs.root != op.root)
              fail_with(from, fmt::format("ranks disagree: rank {} calls {}, rank {} calls {}", std::min(from, static_cast<int>(spec_.rank)),
                                          from < static_cast<int>(spec_.rank) ? show(theirs) : show(op),
                                          std::max(from, static_cast<int>(spec_.rank)),
                                          from < static_cast<int>(spec_.rank) ? show(op) : show(theirs)));
            if (in.len != rlen)
              fail_with(from, fmt::format("rank {} sent {} bytes where rank {} expected {}", from, in.len, spec_.rank, rlen));
          }
          continue;
        }
        if (rd < 0 && (errno == EAGAIN || errno == EINTR)) break;
        fail_with(from, fmt::format("rank {}'s connection broke ({}): it died or left", from,
                                    rd < 0 ? std::strerror(errno) : "closed"));
      }
    }
  }
}

void TcpGroup::ring_reduce_scatter(std::byte* buf, std::size_t n, DType d, Op op, const Op_& desc) {
  const std::size_t W = spec_.world, r = spec_.rank, es = size_of(d);
  const int next = static_cast<int>((r + 1) % W), prev = static_cast<int>((r + W - 1) % W);
  for (std::size_t s = 0; s + 1 < W; ++s) {
    auto [sb, se] = chunk(n, W, (r + 2 * W - s - 1) % W);
    auto [rb, re] = chunk(n, W, (r + 2 * W - s - 2) % W);
    const std::size_t slen = se - sb, rlen = re - rb;
    const std::size_t segs = std::max<std::size_t>({(slen * es + kSegment - 1) / kSegment, (rlen * es + kSegment - 1) / kSegment, 1});
    for (std::size_t g = 0; g < segs; ++g) {
      auto [s0, s1] = chunk(slen, segs, g);
      auto [r0, r1] = chunk(rlen, segs, g);
      tmp_.resize((r1 - r0) * es);
      exchange(next, buf + (sb + s0) * es, (s1 - s0) * es, prev, tmp_.data(), (r1 - r0) * es, desc);
      reduce_into(buf + (rb + r0) * es, tmp_.data(), r1 - r0, d, op);
    }
  }
}

void TcpGroup::ring_allgather(std::byte* buf, std::size_t n, std::size_t es, const Op_& desc) {
  const std::size_t W = spec_.world, r = spec_.rank;
  const int next = static_cast<int>((r + 1) % W), prev = static_cast<int>((r + W - 1) % W);
  for (std::size_t s = 0; s + 1 < W; ++s) {
    auto [sb, se] = chunk(n, W, (r + W - s) % W);
    auto [rb, re] = chunk(n, W, (r + 2 * W - s - 1) % W);
    const std::size_t slen = se - sb, rlen = re - rb;
    const std::size_t segs = std::max<std::size_t>({(slen * es + kSegment - 1) / kSegment, (rlen * es + kSegment - 1) / kSegment, 1});
    for (std::size_t g = 0; g < segs; ++g) {
      auto [s0, s1] = chunk(slen, segs, g);
      auto [r0, r1] = chunk(rlen, segs, g);
      exchange(next, buf + (sb + s0) * es, (s1 - s0) * es, prev, buf + (rb + r0) * es, (r1 - r0) * es, desc);
    }
  }
}

void TcpGroup::allreduce(void* buf, std::size_t n, DType d, Op op) {
  ++seq_;
  if (failed_.load()) fail();
  const Op_ desc{k_allreduce, static_cast<std::uint32_t>(d), n, static_cast<std::uint32_t>(op), -1};
  if (spec_.world == 1) {
    if (op == Op::avg) scale_down(buf, n, d, 1);
    return;
  }
  auto* b = static_cast<std::byte*>(buf);
  ring_reduce_scatter(b, n, d, op, desc);
  if (op == Op::avg) {
    auto [cb, ce] = chunk(n, spec_.world, spec_.rank);
    scale_down(b + cb * size_of(d), ce - cb, d, spec_.world);
  }
  ring_allgather(b, n, size_of(d), desc);
}

void TcpGroup::reduce_scatter(const void* in, void* out, std::size_t n_out, DType d, Op op) {
  ++seq_;
  if (failed_.load()) fail();
  const std::size_t W = spec_.world, es = size_of(d);
  const Op_ desc{k_reduce_scatter, static_cast<std::uint32_t>(d), n_out, static_cast<std::uint32_t>(op), -1};
  // Blocks are the ring's chunks when every block has n_out elements.
  std::vector<std::byte> work(static_cast<const std::byte*>(in), static_cast<const std::byte*>(in) + W * n_out * es);
  if (W > 1) ring_reduce_scatter(work.data(), W * n_out, d, op, desc);
  copy_bytes(out, work.data() + spec_.rank * n_out * es, n_out * es);
  if (op == Op::avg) scale_down(out, n_out, d, W);
}

void TcpGroup::allgather(const void* in, void* out, std::size_t n_in, DType d) {
  ++seq_;
  if (failed_.load()) fail();
  const std::size_t W = spec_.world, es = size_of(d);
  const Op_ desc{k_allgather, static_cast<std::uint32_t>(d), n_in, 0, -1};
  auto* o = static_cast<std::byte*>(out);
  copy_bytes(o + spec_.rank * n_in * es, in, n_in * es);
  if (W > 1) ring_allgather(o, W * n_in, es, desc);
}

void TcpGroup::broadcast(void* buf, std::size_t n, DType d, std::uint32_t root) {
  ++seq_;
  if (failed_.load()) fail();
  const std::size_t W = spec_.world, es = size_of(d);
  const Op_ desc{k_broadcast, static_cast<std::uint32_t>(d), n, 0, static_cast<std::int32_t>(root)};
  if (root >= W) {
    // Every rank is told the same thing by its neighbour's header check, or here.
    fail_with(static_cast<std::int32_t>(spec_.rank),
              fmt::format("rank {} broadcasts from root {} but the group has {} ranks", spec_.rank, root, W));
  }
  if (W == 1) return;
  // A chain from the root, in segments: a middle rank receives segment g
  // while it passes segment g-1 on, so every link carries data at once.
  const std::size_t pos = (spec_.rank + W - root) % W;
  const int next = pos + 1 < W ? static_cast<int>((spec_.rank + 1) % W) : -1;
  const int prev = pos > 0 ? static_cast<int>((spec_.rank + W - 1) % W) : -1;
  auto* b = static_cast<std::byte*>(buf);
  const std::size_t segs = std::max<std::size_t>((n * es + kSegment - 1) / kSegment, 1);
  auto seg = [&](std::size_t g) { return chunk(n, segs, g); };
  if (prev < 0) {
    for (std::size_t g = 0; g < segs; ++g) {
      auto [s0, s1] = seg(g);
      exchange(next, b + s0 * es, (s1 - s0) * es, -1, nullptr, 0, desc);
    }
    return;
  }
  for (std::size_t g = 0; g <= segs; ++g) {
    const bool recv_now = g < segs, send_now = next >= 0 && g >= 1;
    if (!recv_now && !send_now) break;
    auto [s0, s1] = send_now ? seg(g - 1) : std::pair<std::size_t, std::size_t>{0, 0};
    auto [r0, r1] = recv_now ? seg(g) : std::pair<std::size_t, std::size_t>{0, 0};
    exchange(send_now ? next : -1, b + s0 * es, (s1 - s0) * es, recv_now ? prev : -1, b + r0 * es, (r1 - r0) * es,
             desc);
  }
}

void TcpGroup::send(const void* buf, std::size_t n, DType d, std::uint32_t peer) {
  const Op_ desc{k_send, static_cast<std::uint32_t>(d), n, 0, -1};
  exchange(static_cast<int>(peer), buf, n * size_of(d), -1, nullptr, 0, desc, kPointToPoint);
}

void TcpGroup::recv(void* buf, std::size_t n, DType d, std::uint32_t peer) {
  const Op_ desc{k_send, static_cast<std::uint32_t>(d), n, 0, -1};
  exchange(-1, nullptr, 0, static_cast<int>(peer), buf, n * size_of(d), desc, kPointToPoint);
}

void TcpGroup::barrier() {
  ++seq_;
  if (failed_.load()) fail();
  const Op_ desc{k_barrier, 0, 0, 0, -1};
  if (spec_.world > 1) {
    std::byte none{};
    ring_reduce_scatter(&none, 0, DType::u8, Op::sum, desc);
    ring_allgather(&none, 0, 1, desc);
  }
}

void* TcpGroup::alloc(std::size_t bytes) {
  allocs_.push_back(std::make_unique<std::byte[]>(std::max<std::size_t>(bytes, 1)));
  return allocs_.back().get();
}

}  // namespace troupe::coll
