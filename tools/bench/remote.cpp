// `troupe-bench remote` and `troupe-bench spawn`: process actors over a
// socket, next to a raw ping-pong of the same payload between two processes
// (the floor any RPC stack sits on), over loopback TCP and over a Unix
// socketpair (the troupe rows' transport).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "runtime/troupe.hpp"
#include "tools/bench/call_batches.hpp"
#include "tools/bench/report.hpp"

namespace troupe::bench {

class RemoteEcho {
 public:
  int inc(int v) { return v + 1; }
};

}  // namespace troupe::bench

TROUPE_ACTOR(troupe::bench::RemoteEcho, inc);

namespace troupe::bench {

namespace {

// ---- raw TCP floor: a forked echo process per connection ----------------

void write_all(int fd, const void* p, std::size_t n) {
  auto* b = static_cast<const char*>(p);
  while (n) {
    ssize_t w = ::write(fd, b, n);
    if (w <= 0) throw std::runtime_error("raw_tcp: write failed");
    b += w;
    n -= static_cast<std::size_t>(w);
  }
}
void read_all(int fd, void* p, std::size_t n) {
  auto* b = static_cast<char*>(p);
  while (n) {
    ssize_t r = ::read(fd, b, n);
    if (r <= 0) throw std::runtime_error("raw_tcp: read failed");
    b += r;
    n -= static_cast<std::size_t>(r);
  }
}

[[noreturn]] void echo_forever(int c) {  // answers each 4-byte request with value + 1
  std::int32_t v;
  while (::read(c, &v, 4) == 4) {
    ++v;
    if (::write(c, &v, 4) != 4) break;
  }
  ::_exit(0);
}

void close_inherited(int keep) {  // drop other peers' sockets inherited by fork
  for (int other = 3; other < 1024; ++other)
    if (other != keep) ::close(other);
}

/// An echo process over loopback TCP or a Unix socketpair
/// (the transport of the troupe rows).
struct RawPeer {
  int fd = -1;
  pid_t child = -1;
  explicit RawPeer(bool unix_socket) {
    if (unix_socket) {
      int sv[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) throw std::runtime_error("raw_unix: socketpair failed");
      child = ::fork();
      if (child == 0) {
        close_inherited(sv[1]);
        echo_forever(sv[1]);
      }
      ::close(sv[1]);
      fd = sv[0];
      return;
    }
    int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) || ::listen(lfd, 1) ||
        ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len))
      throw std::runtime_error("raw_tcp: cannot listen on loopback");
    child = ::fork();
    if (child == 0) {
      close_inherited(lfd);
      int c = ::accept(lfd, nullptr, nullptr);
      int one = 1;
      ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      echo_forever(c);
    }
    ::close(lfd);
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a)) throw std::runtime_error("raw_tcp: connect failed");
  }
  ~RawPeer() {
    ::shutdown(fd, SHUT_RDWR);  // acts on the socket, whoever else holds a copy
    ::close(fd);
    ::waitpid(child, nullptr, 0);
  }
  int call(int v) {
    std::int32_t x = v;
    write_all(fd, &x, 4);
    read_all(fd, &x, 4);
    return x;
  }
  std::vector<double> batches(int calls, int batch) {
    std::vector<double> per_call;
    std::vector<std::int32_t> buf(batch);
    for (int done = 0; done < calls; done += batch) {
      auto t0 = Clock::now();
      for (int i = 0; i < batch; ++i) buf[i] = i;
      write_all(fd, buf.data(), 4 * buf.size());
      read_all(fd, buf.data(), 4 * buf.size());
      if (buf.back() != batch) throw std::runtime_error("raw_tcp: wrong echo");
      per_call.push_back(micros(Clock::now() - t0) / batch);
    }
    return per_call;
  }
};

std::vector<double> troupe_batches(const ActorRef<RemoteEcho>& a, int calls, int batch) {
  return call_batches(a, &RemoteEcho::inc, calls, batch);
}

template <class Peer, class Batches>
Row nton_row(const std::string& system, std::vector<Peer>& peers, int calls, int batch, Batches run) {
  std::vector<std::vector<double>> samples(peers.size());
  const int each = calls / static_cast<int>(peers.size());
  auto start = Clock::now();
  std::vector<std::thread> callers;
  for (std::size_t i = 0; i < peers.size(); ++i)
    callers.emplace_back([&, i] { samples[i] = run(peers[i], each, batch); });
  for (auto& t : callers) t.join();
  double secs = micros(Clock::now() - start) / 1e6;
  std::vector<double> all;
  for (auto& s : samples) all.insert(all.end(), s.begin(), s.end());
  return make_row(system, "async_nton",
                  {each * static_cast<double>(peers.size()) / secs, percentile(all, 50), percentile(all, 99)});
}

}  // namespace

std::vector<Row> remote_rows(const ActorBenchConfig& cfg) {
  std::vector<Row> rows;
  const int sync_calls = std::min(cfg.sync_calls, 20000);
  const int async_calls = cfg.async_calls;
  {
    Runtime rt({.threads = cfg.threads});
    auto echo = rt.spawn<RemoteEcho>(Options{}.process());
    rows.push_back(make_row("troupe", "sync_1to1", time_sync(sync_calls, [&](int i) {
                              if (echo.call(&RemoteEcho::inc, i).get() != i + 1)
                                throw std::runtime_error("bench: wrong remote result");
                            })));
    troupe_batches(echo, async_calls / 10, cfg.batch);
    auto start = Clock::now();
    auto per = troupe_batches(echo, async_calls, cfg.batch);
    double secs = micros(Clock::now() - start) / 1e6;
    rows.push_back(make_row("troupe", "async_1to1", {async_calls / secs, percentile(per, 50), percentile(per, 99)}));
    std::vector<ActorRef<RemoteEcho>> actors;
    for (int i = 0; i < cfg.nton_pairs; ++i) actors.push_back(rt.spawn<RemoteEcho>(Options{}.process()));
    for (auto& a : actors) a.call(&RemoteEcho::inc, 0).get();
    rows.push_back(nton_row("troupe", actors, async_calls, cfg.batch,
                            [](ActorRef<RemoteEcho>& a, int n, int b) { return troupe_batches(a, n, b); }));
  }
  for (const bool unix_socket : {false, true}) {
    const std::string system = unix_socket ? "raw_unix" : "raw_tcp";
    RawPeer raw(unix_socket);
    rows.push_back(make_row(system, "sync_1to1", time_sync(sync_calls, [&](int i) {
                              if (raw.call(i) != i + 1) throw std::runtime_error(system + ": wrong echo");
                            })));
    auto start = Clock::now();
    auto per = raw.batches(async_calls, cfg.batch);
    double secs = micros(Clock::now() - start) / 1e6;
    rows.push_back(make_row(system, "async_1to1", {async_calls / secs, percentile(per, 50), percentile(per, 99)}));
    std::vector<std::unique_ptr<RawPeer>> peers;
    for (int i = 0; i < cfg.nton_pairs; ++i) peers.push_back(std::make_unique<RawPeer>(unix_socket));
    rows.push_back(nton_row(system, peers, async_calls, cfg.batch,
                            [](std::unique_ptr<RawPeer>& p, int n, int b) { return p->batches(n, b); }));
  }
  return rows;
}

std::vector<Row> spawn_rows(const ActorBenchConfig& cfg) {
  const int n = cfg.spawn_actors;
  Runtime rt({.threads = cfg.threads});
  auto start = Clock::now();
  std::vector<ActorRef<RemoteEcho>> actors;
  std::vector<Ref<int>> ready;
  for (int i = 0; i < n; ++i) {
    actors.push_back(rt.spawn<RemoteEcho>(Options{}.process()));
    ready.push_back(actors.back().call(&RemoteEcho::inc, i));
  }
  for (int i = 0; i < n; ++i)
    if (ready[i].get() != i + 1) throw std::runtime_error("bench: a spawned actor answered wrongly");
  double secs = micros(Clock::now() - start) / 1e6;
  std::vector<Ref<void>> stops;
  for (auto& a : actors) stops.push_back(a.stop());
  for (auto& s : stops) s.get();
  Row row;
  row.set("system", std::string("troupe")).set("pattern", std::string("process_actors"));
  row.set("actors", static_cast<std::int64_t>(n)).set("actors_per_s", n / secs).set("seconds", secs);
  return {row};
}

}  // namespace troupe::bench
