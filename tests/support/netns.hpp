#pragma once
// Separate "hosts" for multi-host tests: network namespaces joined by veth
// pairs to a bridge in the test's own namespace. Addresses come from
// 198.18.0.0/15 (set aside for benchmark networks); the test process is
// 198.18.N.1 on the bridge, host i is 198.18.N.(i+2). Root only: without it
// (or without iproute2) ok() is false and why() says so.
#include <string>
#include <vector>

namespace troupe::test {

class NetnsHosts {
 public:
  explicit NetnsHosts(int hosts);
  ~NetnsHosts();  ///< removes the namespaces, the veths and the bridge
  NetnsHosts(const NetnsHosts&) = delete;
  NetnsHosts& operator=(const NetnsHosts&) = delete;

  bool ok() const noexcept { return ok_; }
  const std::string& why() const noexcept { return why_; }
  /// argv prefix that runs a program on host i: ip netns exec NS.
  std::vector<std::string> on(int i) const;
  std::string ip(int i) const;                 ///< host i's address
  const std::string& local_ip() const { return local_ip_; }  ///< this process's, on the bridge
  /// Cuts (or restores) host i's link: its packets stop, its sockets stay open.
  void set_link(int i, bool up);

 private:
  bool sh(const std::vector<std::string>& argv);
  std::string prefix_, bridge_, local_ip_, why_;
  int subnet_ = 0;
  std::vector<std::string> ns_;
  bool ok_ = false;
};

}  // namespace troupe::test
