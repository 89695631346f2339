// A test binary that is still running when its time is nearly up says where
// it is before ctest kills it: the test case and section it is in, its
// threads (state and kernel wait channel), the processes it started that are
// still alive, and every thread's stack when gdb is installed. Then it kills
// those processes and exits 124, so ctest prints all of it as the failure.
//
// ctest's own timeout kills without a word; a hang seen only on CI (where no
// one can attach a debugger) leaves nothing to go on. The limit comes from
// TROUPE_TEST_WATCHDOG_S (set a little under each suite's ctest TIMEOUT); no
// variable, no watchdog. Included once, by the test mains.
#pragma once

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/proc_stat.hpp"

namespace troupe::test::watchdog {

struct Where {
  std::mutex mu;
  std::string test_case, section;
  std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now();
};
inline Where& where() {
  static Where w;
  return w;
}

class Listener : public Catch::TestEventListenerBase {
 public:
  using TestEventListenerBase::TestEventListenerBase;
  // The base keeps its own stacks (its sectionEnded pops what its
  // sectionStarting pushed): each override calls it first.
  void testCaseStarting(const Catch::TestCaseInfo& info) override {
    TestEventListenerBase::testCaseStarting(info);
    std::lock_guard lock(where().mu);
    where().test_case = info.name;
    where().section.clear();
    where().since = std::chrono::steady_clock::now();
  }
  void sectionStarting(const Catch::SectionInfo& info) override {
    TestEventListenerBase::sectionStarting(info);
    std::lock_guard lock(where().mu);
    if (info.name != where().test_case) where().section = info.name;
  }
};

// pid -> (ppid, "state cmdline") for every process now.
inline std::map<int, std::pair<int, std::string>> processes() {
  std::map<int, std::pair<int, std::string>> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const auto name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto stat = read_text(e.path() / "stat");
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    char state = '?';
    int ppid = 0;
    rest >> state >> ppid;
    out[std::stoi(name)] = {ppid, std::string(1, state) + " " + read_text(e.path() / "cmdline")};
  }
  return out;
}

inline std::vector<int> descendants(const std::map<int, std::pair<int, std::string>>& all, int root) {
  std::vector<int> out, frontier{root};
  while (!frontier.empty()) {
    const int p = frontier.back();
    frontier.pop_back();
    for (const auto& [pid, info] : all)
      if (info.first == p) {
        out.push_back(pid);
        frontier.push_back(pid);
      }
  }
  return out;
}

inline void report_and_exit(int limit_s) {
  std::string test_case, section;
  double in_case = 0;
  {
    std::lock_guard lock(where().mu);
    test_case = where().test_case;
    section = where().section;
    in_case = std::chrono::duration<double>(std::chrono::steady_clock::now() - where().since).count();
  }
  std::fprintf(stderr,
               "\n==== troupe test watchdog: still running after %d s (TROUPE_TEST_WATCHDOG_S), %.0f s into test case "
               "\"%s\"%s%s%s\n",
               limit_s, in_case, test_case.c_str(), section.empty() ? "" : " section \"", section.c_str(),
               section.empty() ? "" : "\"");
  std::fprintf(stderr, "threads of pid %d (state, wait channel):\n", static_cast<int>(::getpid()));
  std::error_code ec;
  for (const auto& t : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::fprintf(stderr, "  %s %-16s %c %s\n", t.path().filename().c_str(), read_text(t.path() / "comm").c_str(),
                 state_in(read_text(t.path() / "stat")), read_text(t.path() / "wchan").c_str());
  }
  const auto all = processes();
  const auto kids = descendants(all, static_cast<int>(::getpid()));
  std::fprintf(stderr, "processes it started, still there: %zu\n", kids.size());
  for (int k : kids)
    if (auto it = all.find(k); it != all.end())
      std::fprintf(stderr, "  %d (parent %d) %s\n", k, it->second.first, it->second.second.substr(0, 300).c_str());
  std::fflush(stderr);
  // Every thread's stack, where gdb is installed (a developer's machine).
  for (const char* gdb : {"/usr/bin/gdb", "/usr/local/bin/gdb"}) {
    if (::access(gdb, X_OK) != 0) continue;
    // Its first three children, then itself (last: a log cut short keeps
    // its end, and gdb lists the main thread last), 10 s each at most: the
    // report must end before ctest's own timeout does.
    std::vector<int> targets(kids.begin(), kids.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(kids.size(), 3)));
    targets.push_back(static_cast<int>(::getpid()));
    for (int target : targets) {
      const auto pid_text = std::to_string(target);
      std::fprintf(stderr, "---- stacks of %d\n", target);
      std::fflush(stderr);
      const pid_t child = ::fork();
      if (child == 0) {
        ::dup2(2, 1);
        ::alarm(10);
        ::execl(gdb, gdb, "-p", pid_text.c_str(), "-batch", "-nx", "-ex", "thread apply all bt 30", nullptr);
        std::_Exit(127);
      }
      if (child > 0) ::waitpid(child, nullptr, 0);
    }
    break;
  }
  for (int k : kids) ::kill(k, SIGKILL);
  std::fprintf(stderr, "==== troupe test watchdog: killed %zu process(es); exit 124\n", kids.size());
  std::fflush(stderr);
  std::fflush(stdout);
  std::_Exit(124);
}

/// Starts the watchdog if TROUPE_TEST_WATCHDOG_S names a limit.
inline void arm() {
  const char* text = std::getenv("TROUPE_TEST_WATCHDOG_S");
  if (!text) return;
  const int limit = std::atoi(text);
  if (limit <= 0) return;
  ::unsetenv("TROUPE_TEST_WATCHDOG_S");  // a process this binary starts is not watched twice
  std::thread([limit] {
    std::this_thread::sleep_for(std::chrono::seconds(limit));
    report_and_exit(limit);
  }).detach();
}

CATCH_REGISTER_LISTENER(Listener)

}  // namespace troupe::test::watchdog
