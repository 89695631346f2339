#include "runtime/cluster/logs.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <vector>

#include <boost/asio/post.hpp>
#include <fmt/format.h>

namespace troupe::cluster {

namespace fs = std::filesystem;

std::string log_path(const std::string& dir, std::uint64_t actor, bool err) {
  return fmt::format("{}/actor-{}.{}", dir, actor, err ? "err" : "out");
}

namespace {

// One capped, appended file.
struct Sink {
  std::string path;
  std::uint64_t cap = 0, size = 0;
  int fd = -1;
  void open() {
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    struct stat st {};
    size = fd >= 0 && ::fstat(fd, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
  }
  void write(const char* p, std::size_t n) {
    while (n > 0 && fd >= 0) {
      if (size >= cap) {  // rotate: the previous part stays readable as .old
        ::close(fd);
        std::error_code ignored;
        fs::rename(path, path + ".old", ignored);
        open();
        if (fd < 0) return;
      }
      const std::size_t room = static_cast<std::size_t>(cap - size);
      const auto w = ::write(fd, p, std::min(n, room));
      if (w <= 0) return;
      p += w, n -= static_cast<std::size_t>(w), size += static_cast<std::uint64_t>(w);
    }
  }
  ~Sink() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

LogPump::LogPump(const LogConfig& cfg, std::uint64_t actor, pid_t pid, int out_fd, int err_fd) {
  thread_ = std::thread([this, cfg, actor, pid, out_fd, err_fd]() {
    Sink sinks[2];
    for (int k = 0; k < 2; ++k) {
      sinks[k].path = log_path(cfg.dir, actor, k == 1);
      sinks[k].cap = std::max<std::uint64_t>(cfg.cap, 4096);
      sinks[k].open();
      char when[64];
      const std::time_t now = std::time(nullptr);
      std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", std::localtime(&now));
      const auto head = fmt::format("--- troupe: worker process {} for actor {} started {} ---\n", pid, actor, when);
      sinks[k].write(head.data(), head.size());
    }
    pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
    char buf[65536];
    int open_fds = 2;
    while (open_fds > 0) {
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      for (int k = 0; k < 2; ++k) {
        if (fds[k].fd < 0 || !(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        const auto n = ::read(fds[k].fd, buf, sizeof buf);
        if (n > 0) {
          sinks[k].write(buf, static_cast<std::size_t>(n));
        } else if (n == 0 || errno != EINTR) {
          ::close(fds[k].fd);
          fds[k].fd = -1;
          --open_fds;
        }
      }
    }
    for (auto& f : fds)
      if (f.fd >= 0) ::close(f.fd);
    done_ = true;
  });
}

LogPump::~LogPump() {
  if (thread_.joinable()) thread_.join();
}

std::string tail_of(const std::string& path, std::uint32_t lines, std::uint64_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  in.seekg(0, std::ios::end);
  const auto size = static_cast<std::uint64_t>(in.tellg());
  const auto from = size > max_bytes ? size - max_bytes : 0;
  in.seekg(static_cast<std::streamoff>(from));
  std::string text(size - from, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (lines == 0) return text;
  std::size_t pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n') --pos;  // the last line's own newline
  for (std::uint32_t found = 0; pos > 0; --pos)
    if (text[pos - 1] == '\n' && ++found == lines) break;
  return text.substr(pos);
}

std::string list_logs(const std::string& dir) {
  std::vector<std::pair<std::string, std::uintmax_t>> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file()) files.emplace_back(e.path().filename().string(), e.file_size(ec));
  std::sort(files.begin(), files.end());
  std::string out = fmt::format("{} ({} files)\n", dir, files.size());
  for (const auto& [name, size] : files) out += fmt::format("  {:<28} {:>12} bytes\n", name, size);
  return out;
}

}  // namespace troupe::cluster

namespace troupe::cluster {

struct LogServer::Follow {
  explicit Follow(boost::asio::io_context& io) : timer(io) {}
  boost::asio::steady_timer timer;
  std::string path;
  std::uint64_t offset = 0;
  Send send;
  std::atomic<bool> cancelled{false};
};

LogServer::LogServer(boost::asio::io_context& io, LogConfig cfg, std::string node_label)
    : io_(io), cfg_(std::move(cfg)), label_(std::move(node_label)) {}

void LogServer::serve(std::uint64_t request, const LogsAsk& ask, Send send) {
  if (cfg_.dir.empty())
    return send({}, true,
                fmt::format("{} does not capture its workers' output (its daemon was started without a log folder)",
                            label_));
  if (ask.actor == 0) return send(list_logs(cfg_.dir), true, {});
  const auto path = log_path(cfg_.dir, ask.actor, ask.err);
  std::error_code ec;
  if (!fs::exists(path, ec))
    return send({}, true, fmt::format("{} has no {} log for actor {} ({} not found)", label_,
                                      ask.err ? "stderr" : "stdout", ask.actor, path));
  const auto size = fs::file_size(path, ec);
  std::string text = tail_of(path, ask.tail);
  for (std::size_t at = 0; at < text.size(); at += 1u << 20)
    send(text.substr(at, 1u << 20), false, {});
  if (!ask.follow) return send({}, true, {});
  auto f = std::make_shared<Follow>(io_);
  f->path = path;
  f->offset = ec ? 0 : size;
  f->send = std::move(send);
  {
    std::lock_guard lock(mu_);
    follows_[request] = f;
  }
  poll(f);
}

void LogServer::poll(const std::shared_ptr<Follow>& f) {
  f->timer.expires_after(std::chrono::milliseconds(250));
  f->timer.async_wait([this, f](boost::system::error_code ec) {
    if (ec || f->cancelled) return;
    std::error_code fec;
    const auto size = fs::file_size(f->path, fec);
    if (!fec) {
      if (size < f->offset) f->offset = 0;  // rotated: a new file
      if (size > f->offset) {
        std::ifstream in(f->path, std::ios::binary);
        in.seekg(static_cast<std::streamoff>(f->offset));
        std::string text(std::min<std::uint64_t>(size - f->offset, 1u << 20), '\0');
        in.read(text.data(), static_cast<std::streamsize>(text.size()));
        text.resize(static_cast<std::size_t>(in.gcount()));
        f->offset += text.size();
        f->send(text, false, {});
      }
    }
    poll(f);
  });
}

void LogServer::cancel(std::uint64_t request) {
  std::shared_ptr<Follow> f;
  {
    std::lock_guard lock(mu_);
    auto it = follows_.find(request);
    if (it == follows_.end()) return;
    f = std::move(it->second);
    follows_.erase(it);
  }
  f->cancelled = true;
  boost::asio::post(io_, [f]() { f->timer.cancel(); });
}

void LogServer::cancel_all() {
  std::vector<std::uint64_t> ids;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, f] : follows_) ids.push_back(id);
  }
  for (auto id : ids) cancel(id);
}

}  // namespace troupe::cluster
