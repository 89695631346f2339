#pragma once
// A JSON string literal, quoted, with '"', '\' and control characters
// escaped: the CLI's --json output and `troupe trace` files write text
// through it.
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace troupe::detail {

inline std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
      continue;
    }
    out += c;
  }
  return out + "\"";
}

}  // namespace troupe::detail
