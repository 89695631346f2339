#pragma once
// "host:port" cluster addresses.
#include <cstdint>
#include <string>

namespace troupe::cluster {

struct Address {
  std::string host;
  std::uint16_t port = 0;
  std::string str() const { return host + ":" + std::to_string(port); }
};

/// Parses "host:port"; UsageError names what is wrong.
Address parse_address(const std::string& text);

/// Where the head writes its address for local tools: next to the token file.
std::string default_address_path();
/// The head's address file next to `token_file` ("": the default one).
std::string address_path_beside(const std::string& token_file);
/// The address to use: `flag`, else $TROUPE_ADDRESS, else the address file
/// next to `token_file` (or $TROUPE_TOKEN_FILE, or the default token file)
/// that a head on this machine wrote; UsageError if none.
Address resolve_address(const std::string& flag, const std::string& token_file = {});

}  // namespace troupe::cluster
