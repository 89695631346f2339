#pragma once
// The cluster token and the challenge-response that proves knowledge of it.
//
// The head makes a token at start and stores it in a file only its user can
// read; joiners get it by flag, environment or that file. Both sides prove
// they know it with HMAC-SHA256 over fresh nonces: the token never crosses
// the wire, and a recorded handshake cannot be replayed.
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/net/sha256.hpp"

namespace troupe::net {

/// 32 random bytes, hex encoded.
std::string make_token();
/// n bytes from the kernel's CSPRNG.
std::vector<std::uint8_t> random_bytes(std::size_t n);

/// $TROUPE_TOKEN_FILE, else ~/.troupe/cluster.token.
std::string default_token_path();
/// Writes atomically with mode 0600 (its folder 0700).
void write_token_file(const std::string& path, const std::string& token);
/// Reads a token file; refuses one that others can read or that is empty.
std::string read_token_file(const std::string& path);
/// The token a joiner uses: `flag` if set, else $TROUPE_TOKEN, else the file
/// at `file` (or the default path). Throws Error naming what it tried.
std::string resolve_token(const std::string& flag, const std::string& file);

Digest server_proof(const std::string& token, const std::vector<std::uint8_t>& client_nonce,
                    const std::vector<std::uint8_t>& server_nonce);
Digest client_proof(const std::string& token, const std::vector<std::uint8_t>& server_nonce,
                    const std::vector<std::uint8_t>& client_nonce);

}  // namespace troupe::net
