#include "runtime/net/auth.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "runtime/errors.hpp"

namespace troupe::net {

std::vector<std::uint8_t> random_bytes(std::size_t n) {
  std::vector<std::uint8_t> out(n);
  std::size_t got = 0;
  while (got < n) {
    ssize_t r = ::getrandom(out.data() + got, n - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw Error(fmt::format("getrandom failed: {}", std::strerror(errno)));
    }
    got += static_cast<std::size_t>(r);
  }
  return out;
}

std::string make_token() {
  std::string hex;
  for (auto b : random_bytes(32)) hex += fmt::format("{:02x}", b);
  return hex;
}

std::string default_token_path() {
  if (const char* f = std::getenv("TROUPE_TOKEN_FILE"); f && *f) return f;
  const char* home = std::getenv("HOME");
  return fmt::format("{}/.troupe/cluster.token", home && *home ? home : "/tmp");
}

void write_token_file(const std::string& path, const std::string& token) {
  namespace fs = std::filesystem;
  fs::path p(path);
  if (p.has_parent_path()) {
    fs::create_directories(p.parent_path());
    ::chmod(p.parent_path().c_str(), 0700);
  }
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw Error(fmt::format("cannot write token file '{}': {}", tmp, std::strerror(errno)));
  std::string line = token + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    throw Error(fmt::format("cannot write token file '{}': {}", path, std::strerror(errno)));
  }
}

std::string read_token_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw Error(fmt::format("cannot read cluster token file '{}': {}", path, std::strerror(errno)));
  if (st.st_mode & 077)
    throw Error(fmt::format("cluster token file '{}' is readable by others (mode {:o}); chmod 600 it", path,
                            st.st_mode & 0777));
  std::ifstream in(path);
  std::string token;
  std::getline(in, token);
  if (token.empty()) throw Error(fmt::format("cluster token file '{}' is empty", path));
  return token;
}

std::string resolve_token(const std::string& flag, const std::string& file) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("TROUPE_TOKEN"); env && *env) return env;
  return read_token_file(file.empty() ? default_token_path() : file);
}

namespace {
Digest proof(const std::string& token, const char* label, const std::vector<std::uint8_t>& a,
             const std::vector<std::uint8_t>& b) {
  std::vector<std::uint8_t> msg(label, label + std::strlen(label));
  msg.insert(msg.end(), a.begin(), a.end());
  msg.insert(msg.end(), b.begin(), b.end());
  std::span<const std::uint8_t> key(reinterpret_cast<const std::uint8_t*>(token.data()), token.size());
  return hmac_sha256(key, msg);
}
}  // namespace

Digest server_proof(const std::string& token, const std::vector<std::uint8_t>& client_nonce,
                    const std::vector<std::uint8_t>& server_nonce) {
  return proof(token, "troupe-server-v1", client_nonce, server_nonce);
}

Digest client_proof(const std::string& token, const std::vector<std::uint8_t>& server_nonce,
                    const std::vector<std::uint8_t>& client_nonce) {
  return proof(token, "troupe-client-v1", server_nonce, client_nonce);
}

}  // namespace troupe::net
