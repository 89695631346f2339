#pragma once
// SHA-256 and HMAC-SHA256 (FIPS 180-4, RFC 2104), for the cluster handshake.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace troupe::net {

using Digest = std::array<std::uint8_t, 32>;

class Sha256 {
 public:
  Sha256();
  void update(std::span<const std::uint8_t> data);
  Digest finish();

 private:
  void block(const std::uint8_t* p);
  std::array<std::uint32_t, 8> h_;
  std::array<std::uint8_t, 64> buf_{};
  std::size_t buf_len_ = 0;
  std::uint64_t total_ = 0;
};

Digest sha256(std::span<const std::uint8_t> data);
Digest hmac_sha256(std::span<const std::uint8_t> key, std::span<const std::uint8_t> message);
/// Constant-time comparison (no early exit on the first differing byte).
bool equal_digest(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b);

}  // namespace troupe::net
