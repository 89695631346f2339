#include "tools/cli/top_command.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>

#include <fmt/format.h>

#include "runtime/errors.hpp"
#include "runtime/net/auth.hpp"
#include "tools/cli/listings.hpp"
#include "tools/cli/table.hpp"

namespace troupe::cli {

namespace {

const char* const kPanes[] = {"nodes", "actors", "groups", "jobs"};

Listing listing(int pane, const cluster::ClusterView& view, const std::vector<cluster::ActorView>& actors) {
  switch (pane) {
    case 1: return actor_listing(actors);
    case 2: return group_listing(view);
    case 3: return job_listing(view);
    default: return node_listing(view);
  }
}

// Shown columns only (the filter-only ones have no title).
std::vector<std::size_t> shown(const Listing& l) {
  std::vector<std::size_t> out;
  for (std::size_t c = 0; c < l.cols.size(); ++c)
    if (!l.cols[c].title.empty()) out.push_back(c);
  return out;
}

bool numeric(const std::string& s, double& v) {
  if (s.empty()) return false;
  char* end = nullptr;
  v = std::strtod(s.c_str(), &end);
  return end && (*end == 0 || *end == '%' || *end == '/' || *end == 'm' || *end == 'G' || *end == 'M' || *end == 'K');
}

std::string header(const cluster::ClusterView& view) {
  std::size_t alive = 0, running = 0;
  for (const auto& n : view.nodes) alive += n.alive;
  for (const auto& j : view.jobs) running += j.status.state == "running";
  std::string actors;
  for (const auto& [state, n] : view.actor_states) actors += fmt::format("{}{} {}", actors.empty() ? "" : ", ", n, state);
  const auto issues = problems(view);
  return fmt::format("troupe top  {}  up {}  {}  nodes {} alive {} dead  actors {}  jobs {} running",
                     view.head_address, duration(view.uptime_ms / 1000.0),
                     issues.empty() ? "healthy" : fmt::format("UNHEALTHY ({})", issues.size()), alive,
                     view.nodes.size() - alive, actors.empty() ? "none" : actors, running);
}

}  // namespace

std::vector<std::string> top_frame(const cluster::ClusterView& view, const std::vector<cluster::ActorView>& actors,
                                   const TopState& st, std::size_t width, std::size_t height) {
  std::vector<std::string> out;
  out.push_back(header(view));
  std::string tabs;
  for (int p = 0; p < 4; ++p)
    tabs += p == st.pane ? fmt::format("[{} {}] ", p + 1, kPanes[p]) : fmt::format(" {} {}  ", p + 1, kPanes[p]);
  Listing l = listing(st.pane, view, actors);
  const auto cols = shown(l);
  const std::size_t sort_col = cols.empty() ? 0 : cols[st.sort % cols.size()];
  out.push_back(fmt::format("{} sort: {}{}  filter: {}", tabs, l.cols.empty() ? "-" : l.cols[sort_col].title,
                            st.reverse ? " (desc)" : "", st.filter.empty() ? "-" : st.filter));
  std::vector<const Row*> rows;
  for (const auto& r : l.rows) {
    if (!st.filter.empty()) {
      bool hit = false;
      for (const auto& c : r.cells) hit = hit || c.find(st.filter) != std::string::npos;
      if (!hit) continue;
    }
    rows.push_back(&r);
  }
  std::stable_sort(rows.begin(), rows.end(), [&](const Row* a, const Row* b) {
    const auto& x = a->raw[sort_col];
    const auto& y = b->raw[sort_col];
    double dx = 0, dy = 0;
    const bool less = numeric(x, dx) && numeric(y, dy) ? dx < dy : x < y;
    const bool more = numeric(x, dx) && numeric(y, dy) ? dy < dx : y < x;
    return st.reverse ? more : less;
  });
  const std::size_t room = height > 4 ? height - 4 : 1;  // header, tabs, table header, footer
  const std::size_t total = rows.size();
  if (rows.size() > room) rows.resize(room);
  for (auto& line : render(l.cols, rows, width)) out.push_back(std::move(line));
  if (l.rows.empty()) out.push_back(fmt::format("(no {})", l.what));
  const std::string more = total > rows.size() ? fmt::format("{} more rows below; ", total - rows.size()) : "";
  out.push_back(fmt::format("{}q quit  1-4/tab pane  s sort  r reverse  / filter", more));
  for (auto& line : out)
    if (width && line.size() > width) line.resize(width);
  return out;
}

namespace {

std::atomic<bool> g_stop{false};

struct RawTerminal {
  termios saved{};
  bool ok = false;
  RawTerminal() {
    if (::tcgetattr(STDIN_FILENO, &saved) != 0) return;
    termios raw = saved;
    raw.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO));
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    ok = ::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    fmt::print("\x1b[?1049h\x1b[?25l");  // the alternate screen, no cursor
    std::fflush(stdout);
  }
  ~RawTerminal() {
    fmt::print("\x1b[?25h\x1b[?1049l");
    std::fflush(stdout);
    if (ok) ::tcsetattr(STDIN_FILENO, TCSANOW, &saved);
  }
};

}  // namespace

int top_command(int argc, char** argv) {
  std::vector<char*> rest;
  bool once = false;
  double interval = 1.0;
  bool pane_given = false;
  TopState st;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--once") {
      once = true;
    } else if (a == "--interval") {
      if (i + 1 >= argc) throw UsageError("--interval needs seconds");
      char* end = nullptr;
      interval = std::strtod(argv[++i], &end);
      if (*end || !(interval >= 0.2 && interval <= 60))
        throw UsageError(fmt::format("--interval wants 0.2 to 60 seconds, got '{}'", argv[i]));
    } else if (a == "--pane") {
      if (i + 1 >= argc) throw UsageError("--pane needs nodes, actors, groups or jobs");
      const std::string p = argv[++i];
      auto it = std::find(std::begin(kPanes), std::end(kPanes), p);
      if (it == std::end(kPanes)) throw UsageError(fmt::format("--pane: '{}' is not one of nodes, actors, groups, jobs", p));
      st.pane = static_cast<int>(it - std::begin(kPanes));
      pane_given = true;
    } else {
      rest.push_back(argv[i]);
    }
  }
  auto f = parse_flags(static_cast<int>(rest.size()), rest.data(), false);
  if (f.json) throw UsageError("top has no --json: use troupe status|nodes|actors|groups|jobs --json");
  const auto addr = cluster::resolve_address(f.address, f.token_file);
  const auto token = net::resolve_token(f.token, f.token_file);
  const bool tty = ::isatty(STDOUT_FILENO) && ::isatty(STDIN_FILENO);
  if (once || !tty) {
    // One frame of every pane (or the one --pane names), whole (no terminal to fit).
    auto view = cluster::query_status(addr, token);
    auto actors = cluster::query_actors(addr, token);
    for (int p = 0; p < 4; ++p) {
      if (pane_given && p != st.pane) continue;
      TopState s = st;
      s.pane = p;
      auto lines = top_frame(view, actors, s, 0, 1000000);
      if (p == 0 || pane_given) fmt::print("{}\n", lines[0]);
      fmt::print("\n{}\n", kPanes[p]);
      for (std::size_t i = 2; i + 1 < lines.size(); ++i) fmt::print("{}\n", lines[i]);
    }
    return 0;
  }
  ::signal(SIGINT, [](int) { g_stop = true; });
  ::signal(SIGTERM, [](int) { g_stop = true; });
  RawTerminal term;
  cluster::ClusterView view;
  std::vector<cluster::ActorView> actors;
  std::string error;
  bool typing = false;  // after '/': keys go to the filter until Enter or Esc
  auto next = std::chrono::steady_clock::now();
  double frame_ms = 0;
  while (!g_stop) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= next) {
      try {
        view = cluster::query_status(addr, token, std::chrono::milliseconds(2000));
        actors = cluster::query_actors(addr, token, std::chrono::milliseconds(2000));
        error.clear();
      } catch (const std::exception& e) {
        error = e.what();  // keep showing the last frame, and why it is old
      }
      next = now + std::chrono::milliseconds(static_cast<int>(interval * 1000));
    }
    winsize ws{};
    ::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws);
    const std::size_t width = ws.ws_col ? ws.ws_col : 120, height = ws.ws_row ? ws.ws_row : 40;
    const auto t0 = std::chrono::steady_clock::now();
    auto lines = top_frame(view, actors, st, width, height);
    if (!error.empty()) lines.insert(lines.begin() + 1, fmt::format("(not refreshed: {})", error).substr(0, width));
    if (typing) lines.back() = fmt::format("filter: {}_   (Enter keeps it, Esc clears it)", st.filter);
    lines.back() += fmt::format("  frame {:.1f} ms", frame_ms);
    std::string screen = "\x1b[H\x1b[2J";
    for (std::size_t i = 0; i < lines.size() && i < height; ++i) {
      const bool inverse = i == 0 || i == 2;
      screen += (inverse ? "\x1b[7m" : "") + lines[i] + (inverse ? "\x1b[0m" : "") + (i + 1 < height ? "\r\n" : "");
    }
    frame_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::fwrite(screen.data(), 1, screen.size(), stdout);
    std::fflush(stdout);
    pollfd in{STDIN_FILENO, POLLIN, 0};
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - std::chrono::steady_clock::now());
    if (::poll(&in, 1, static_cast<int>(std::max<std::int64_t>(0, wait.count()))) <= 0) continue;
    char buf[64];
    const auto n = ::read(STDIN_FILENO, buf, sizeof buf);
    for (ssize_t i = 0; i < n; ++i) {
      const char c = buf[i];
      if (typing) {
        if (c == '\n' || c == '\r') typing = false;
        else if (c == 27) typing = false, st.filter.clear();
        else if (c == 127 || c == 8) { if (!st.filter.empty()) st.filter.pop_back(); }
        else if (c >= 32 && c < 127) st.filter += c;
        continue;
      }
      if (c == 'q' || c == 'Q' || c == 3) g_stop = true;
      else if (c >= '1' && c <= '4') st.pane = c - '1', st.sort = 0, st.reverse = false;
      else if (c == '\t') st.pane = (st.pane + 1) % 4, st.sort = 0, st.reverse = false;
      else if (c == 's') ++st.sort;
      else if (c == 'r') st.reverse = !st.reverse;
      else if (c == '/') typing = true, st.filter.clear();
      else if (c == 27 && i + 1 >= n) st.filter.clear();  // a lone Esc (not an arrow key's sequence)
    }
  }
  return 0;
}

}  // namespace troupe::cli
