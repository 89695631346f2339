#include "runtime/cluster/address.hpp"

#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "runtime/errors.hpp"
#include "runtime/net/auth.hpp"

namespace troupe::cluster {

Address parse_address(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
    throw UsageError(fmt::format("cluster address '{}': expected HOST:PORT", text));
  unsigned port = 0;
  const char* b = text.data() + colon + 1;
  const char* e = text.data() + text.size();
  auto [p, ec] = std::from_chars(b, e, port);
  if (ec != std::errc{} || p != e || port == 0 || port > 65535)
    throw UsageError(fmt::format("cluster address '{}': '{}' is not a port (1-65535)", text, std::string(b, e)));
  return {text.substr(0, colon), static_cast<std::uint16_t>(port)};
}

std::string default_address_path() {
  return (std::filesystem::path(net::default_token_path()).parent_path() / "head.address").string();
}

std::string address_path_beside(const std::string& token_file) {
  if (token_file.empty()) return default_address_path();
  return (std::filesystem::path(token_file).parent_path() / "head.address").string();
}

Address resolve_address(const std::string& flag, const std::string& token_file) {
  if (!flag.empty()) return parse_address(flag);
  if (const char* env = std::getenv("TROUPE_ADDRESS"); env && *env) return parse_address(env);
  const std::string path = address_path_beside(token_file.empty() && std::getenv("TROUPE_TOKEN_FILE")
                                                   ? std::string(std::getenv("TROUPE_TOKEN_FILE"))
                                                   : token_file);
  std::ifstream in(path);
  std::string line;
  if (in && std::getline(in, line) && !line.empty()) return parse_address(line);
  throw UsageError(fmt::format(
      "no cluster address: pass --address HOST:PORT, set TROUPE_ADDRESS, or start a head on this machine (it "
      "writes {})",
      path));
}

}  // namespace troupe::cluster
