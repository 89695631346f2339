// An in-process head on loopback: the handshake, status, and hostile peers.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>

#include <fmt/format.h>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "runtime/cluster/connect.hpp"
#include "runtime/cluster/head.hpp"
#include "runtime/cluster/client.hpp"
#include "runtime/errors.hpp"
#include "runtime/net/handshake.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/http.hpp"
#include "tests/support/prom_check.hpp"

using namespace troupe;
namespace asio = boost::asio;

namespace {

struct LiveHead {
  asio::io_context io;
  std::shared_ptr<cluster::Head> head;
  std::thread runner;
  std::string token = "test-token-0123456789";
  explicit LiveHead(std::chrono::milliseconds handshake = std::chrono::milliseconds(500), bool metrics = false) {
    cluster::HeadOptions o;
    o.token = token;
    o.handshake_timeout = handshake;
    o.heartbeat = std::chrono::milliseconds(50);
    head = std::make_shared<cluster::Head>(io, o);
    head->add_local_node({.total = {{"CPU", 4}}}, "test-host");
    if (metrics) head->serve_metrics(0);
    head->start();
    runner = std::thread([this] { io.run(); });
  }
  ~LiveHead() {
    head->stop();  // closes the listener, the timer and every connection: run() then returns
    runner.join();
  }
  cluster::Address addr() const { return {"127.0.0.1", head->port()}; }
};

using test::http_exchange;

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

TEST_CASE("the head serves Prometheus text at /metrics and answers bad requests with their status", "[cluster][metrics]") {
  LiveHead h(std::chrono::milliseconds(500), true);
  REQUIRE(h.head->metrics_port() != 0);
  const auto port = h.head->metrics_port();
  // The head samples its own node every heartbeat (50 ms here).
  test::eventually([&] { return http_exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").find("troupe_node_memory_total_bytes{") != std::string::npos; });
  auto answer = http_exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  REQUIRE_THAT(answer, Catch::StartsWith("HTTP/1.1 200 OK\r\n") && Catch::Contains("text/plain; version=0.0.4"));
  const auto body = answer.substr(answer.find("\r\n\r\n") + 4);
  auto m = test::prom_check(body);
  INFO(body);
  CHECK(m.errors.empty());
  for (auto& e : m.errors) UNSCOPED_INFO(e);
  REQUIRE(m.find("troupe_nodes", {{"state", "alive"}}).size() == 1);
  CHECK(m.find("troupe_nodes", {{"state", "alive"}})[0].value == 1);
  CHECK(m.find("troupe_node_resource_total", {{"resource", "CPU"}, {"host", "test-host"}})[0].value == 4);
  CHECK(m.find("troupe_node_memory_total_bytes").at(0).value > 0);
  CHECK(m.types.at("troupe_node_failures_total") == "counter");
  // Content-Length says how long the body is.
  CHECK_THAT(answer, Catch::Contains(fmt::format("Content-Length: {}\r\n", body.size())));

  CHECK_THAT(http_exchange(port, "HEAD /metrics HTTP/1.0\r\n\r\n"), Catch::StartsWith("HTTP/1.1 200") && Catch::EndsWith("\r\n\r\n"));
  CHECK_THAT(http_exchange(port, "GET /nope HTTP/1.1\r\n\r\n"), Catch::StartsWith("HTTP/1.1 404"));
  CHECK_THAT(http_exchange(port, "POST /metrics HTTP/1.1\r\n\r\n"), Catch::StartsWith("HTTP/1.1 405"));
  CHECK_THAT(http_exchange(port, "hello\r\n\r\n"), Catch::StartsWith("HTTP/1.1 400"));
  CHECK_THAT(http_exchange(port, "GET /metrics SMTP/9\r\n\r\n"), Catch::StartsWith("HTTP/1.1 400"));
  // A header past 8 KiB, and bytes that are not text, are refused; the head serves on.
  CHECK_THAT(http_exchange(port, "GET /metrics HTTP/1.1\r\nX: " + std::string(20000, 'a') + "\r\n\r\n"),
             Catch::StartsWith("HTTP/1.1 400"));
  std::mt19937 rng(7);
  for (int i = 0; i < 20; ++i) {
    std::vector<std::uint8_t> junk(rng() % 300);
    for (auto& b : junk) b = static_cast<std::uint8_t>(rng());
    hostile_peer(port, junk);
  }
  CHECK_THAT(http_exchange(port, "GET /metrics HTTP/1.1\r\n\r\n"), Catch::StartsWith("HTTP/1.1 200"));
  // The control port is still fine.
  CHECK(cluster::query_status(h.addr(), h.token).nodes.size() == 1);
}

TEST_CASE("a driver's job and group reports show in status, with stragglers; its exit ends them", "[cluster][jobs]") {
  LiveHead h(std::chrono::milliseconds(500), true);
  auto worker_io = std::make_shared<asio::io_context>();
  auto link = cluster::ClusterClient::join(h.addr(), h.token, worker_io);
  telemetry::JobStatus job;
  job.id = 1;
  job.name = "mnist";
  job.strategy = "data parallel";
  job.step = 10;
  job.total_steps = 100;
  job.ranks = {{0, "replica 0", "replica", 7, 0.010, 0.004}, {1, "replica 1", "replica", 8, 0.031, 0.0}};
  telemetry::GroupStatus g{"dp", 42, "shm", {7, 8}, "ready", ""};
  link->report_group(g);
  cluster::ClusterView view;
  // The first report is the job's warm-up, and one slow chunk is noise: a
  // rank is named once it is slow in two reports of three.
  auto report_at = [&](std::int64_t step) {
    job.step = step;
    link->report_job(job);
    test::eventually([&] {
      view = cluster::query_status(h.addr(), h.token);
      return view.jobs.size() == 1 && view.jobs[0].status.step == step;
    });
  };
  report_at(8);
  CHECK(view.jobs[0].stragglers.empty());
  report_at(10);
  CHECK(view.jobs[0].stragglers.empty());
  report_at(12);
  REQUIRE(view.jobs[0].stragglers.size() == 1);
  CHECK(view.jobs[0].stragglers[0].rank == 1);
  CHECK(view.jobs[0].stragglers[0].since_step == 10);
  CHECK(view.jobs[0].status.name == "mnist");
  REQUIRE(view.groups.size() == 1);
  CHECK(view.groups[0].status.members == std::vector<std::uint64_t>{7, 8});
  // Still slow at step 14: named since step 10. Then it catches up: named
  // until it has kept up in three reports.
  report_at(14);
  CHECK(view.jobs[0].stragglers.at(0).since_step == 10);
  job.ranks[1].compute_s = 0.011;
  report_at(16);
  report_at(18);
  CHECK(view.jobs[0].stragglers.size() == 1);
  report_at(20);
  CHECK(view.jobs[0].stragglers.empty());
  job.ranks[1].compute_s = 0.031;
  report_at(22);
  report_at(24);
  REQUIRE(view.jobs[0].stragglers.size() == 1);
  CHECK(view.jobs[0].stragglers[0].since_step == 22);
  // /metrics has the job and the group, one series each.
  auto m = test::prom_check(http_exchange(h.head->metrics_port(), "GET /metrics HTTP/1.0\r\n\r\n").substr(0));
  CHECK(m.find("troupe_job_step", {{"name", "mnist"}}).at(0).value == 24);
  CHECK(m.find("troupe_job_stragglers", {{"name", "mnist"}}).at(0).value == 1);
  CHECK(m.find("troupe_collective_groups", {{"state", "ready"}}).at(0).value == 1);
  // More jobs than the head keeps: the table stays bounded, the running ones kept first.
  for (std::uint64_t i = 2; i < 400; ++i) {
    telemetry::JobStatus j;
    j.id = i;
    j.name = "j" + std::to_string(i);
    j.state = i % 2 ? "running" : "finished";
    link->report_job(j);
  }
  test::eventually([&] {
    view = cluster::query_status(h.addr(), h.token);
    return std::any_of(view.jobs.begin(), view.jobs.end(), [](auto& j) { return j.status.id == 399; });
  });
  CHECK(view.jobs.size() == 128);
  for (const auto& j : view.jobs) CHECK(j.status.state == "running");
  // The driver leaves: its running jobs fail, saying why; its groups go.
  link->close();
  test::eventually([&] {
    view = cluster::query_status(h.addr(), h.token);
    return view.groups.empty();
  });
  for (const auto& j : view.jobs) {
    CHECK(j.status.state == "failed");
    CHECK(j.status.detail == "its driver exited before the job ended");
  }
}

TEST_CASE("a worker that dials back before its actor asks is handed over on the worker thread, not inside the ask",
          "[cluster]") {
  // A remote worker can dial its driver back before place() has returned
  // to the actor that asked for it. The actor asks (expect_worker) while it
  // holds its own lock, and its attach takes that lock: handing the early
  // worker over inside the ask deadlocked the driver (troupe run hung).
  auto worker_io = std::make_shared<asio::io_context>();
  auto guard = asio::make_work_guard(*worker_io);
  std::thread io_thread([&] { worker_io->run(); });
  auto link = cluster::ClusterClient::embedded(worker_io);
  const std::uint64_t actor = 4242;
  {
    // The worker's side: prove the token, name the actor.
    asio::io_context wio;
    auto done = asio::co_spawn(
        wio,
        [&]() -> asio::awaitable<std::shared_ptr<net::Connection>> {
          auto conn = co_await cluster::connect_to(wio, cluster::parse_address(link->driver_address()),
                                                   std::chrono::seconds(10));
          co_await net::connect_handshake(conn, link->token(), proto::Role::WORKER, std::chrono::seconds(10));
          co_await conn->write_frame(
              net::envelope_of<proto::WorkerEnvelope>([&](proto::WorkerEnvelope::Builder e) { e.setAttach(actor); }));
          co_return conn;
        },
        asio::use_future);
    wio.run();
    auto worker = done.get();
    test::eventually([&] { return link->early_workers() == 1; });
    std::promise<std::thread::id> ran;
    link->expect_worker(actor, [&](std::shared_ptr<net::Connection> c) {
      CHECK(c != nullptr);
      ran.set_value(std::this_thread::get_id());
    });
    auto on = ran.get_future();
    REQUIRE(on.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    CHECK(on.get() != std::this_thread::get_id());
    CHECK(link->early_workers() == 0);
  }
  link->close();
  guard.reset();
  worker_io->stop();
  io_thread.join();
}
