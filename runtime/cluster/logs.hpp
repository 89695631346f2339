#pragma once
// Worker output on a node: each worker's stdout and stderr go through pipes
// to files in the daemon's log folder (actor-ID.out / .err, appended across
// restarts), each capped: past the cap the file moves to .old and a new one
// starts. `troupe logs` reads them here (the tail, then what follows).
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

namespace troupe::cluster {

struct LogConfig {
  std::string dir;                       ///< "": output is not captured (inherited)
  std::uint64_t cap = 16ull << 20;       ///< bytes per file before it rotates
};

/// The log file of `actor`'s stdout (err: stderr) in `dir`.
std::string log_path(const std::string& dir, std::uint64_t actor, bool err);

/// Copies a worker's two pipes into its files until both close (a thread).
class LogPump {
 public:
  LogPump(const LogConfig& cfg, std::uint64_t actor, pid_t pid, int out_fd, int err_fd);
  ~LogPump();  ///< joins (the pipes close when the worker exits)
  LogPump(const LogPump&) = delete;
  LogPump& operator=(const LogPump&) = delete;
  bool done() const noexcept { return done_; }

 private:
  std::thread thread_;
  std::atomic<bool> done_{false};
};

/// The last `lines` lines of a file (0: all of it), at most `max_bytes`.
std::string tail_of(const std::string& path, std::uint32_t lines, std::uint64_t max_bytes = 4ull << 20);
/// What the log folder holds: one line per file (name, size).
std::string list_logs(const std::string& dir);

}  // namespace troupe::cluster

// ---- Serving `troupe logs` (on a node daemon, or the head for its own node) --
#include <functional>
#include <map>
#include <memory>
#include <mutex>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

namespace troupe::cluster {

struct LogsAsk {
  std::uint64_t actor = 0, node = 0;
  bool err = false, follow = false;
  std::uint32_t tail = 0;
};

/// Answers log requests from one folder: the tail (or the whole file), then,
/// when following, what is appended (every 250 ms; a rotated file is read
/// from its start). `send(data, eof, error)` takes each chunk.
class LogServer {
 public:
  using Send = std::function<void(const std::string& data, bool eof, const std::string& error)>;
  LogServer(boost::asio::io_context& io, LogConfig cfg, std::string node_label);
  void serve(std::uint64_t request, const LogsAsk& ask, Send send);
  void cancel(std::uint64_t request);
  void cancel_all();

 private:
  struct Follow;
  void poll(const std::shared_ptr<Follow>& f);
  boost::asio::io_context& io_;
  LogConfig cfg_;
  std::string label_;
  std::mutex mu_;
  std::map<std::uint64_t, std::shared_ptr<Follow>> follows_;
};

}  // namespace troupe::cluster
