#pragma once
// Reading /proc in tests: a file's text, and a process's state letter.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace troupe::test {

/// A /proc file's text, NULs as spaces (cmdline), without its trailing newline.
inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  auto t = s.str();
  for (auto& c : t)
    if (c == '\0') c = ' ';
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  return t;
}

/// The state letter in a /proc/.../stat line (R, S, D, T, Z...), after the
/// command, which may hold spaces and parentheses; '?' if there is none.
inline char state_in(const std::string& stat) {
  const auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() ? stat[close + 2] : '?';
}

/// A process's state letter: 'T' once stopped, '?' once gone.
inline char state_of(int pid) { return state_in(read_text("/proc/" + std::to_string(pid) + "/stat")); }

}  // namespace troupe::test
