#include "tests/support/netns.hpp"

#include <unistd.h>

#include <filesystem>

#include "tests/support/process.hpp"

namespace troupe::test {

namespace {
std::string ip_tool() {
  for (const char* p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"})
    if (std::filesystem::exists(p)) return p;
  return {};
}
}  // namespace

bool NetnsHosts::sh(const std::vector<std::string>& argv) {
  auto r = run_process(argv, std::chrono::seconds(10));
  if (r.exit_code != 0 && why_.empty()) {
    std::string cmd;
    for (auto& a : argv) cmd += a + " ";
    why_ = cmd + "failed: " + r.err;
  }
  return r.exit_code == 0;
}

NetnsHosts::NetnsHosts(int hosts) {
  if (::geteuid() != 0) {
    why_ = "not root: network namespaces need CAP_NET_ADMIN";
    return;
  }
  const std::string ip = ip_tool();
  if (ip.empty()) {
    why_ = "iproute2's ip is not installed";
    return;
  }
  const int pid = static_cast<int>(::getpid());
  subnet_ = 2 + pid % 250;  // 198.18.<subnet>.0/24
  prefix_ = "tr" + std::to_string(pid);
  bridge_ = prefix_ + "br";
  local_ip_ = "198.18." + std::to_string(subnet_) + ".1";
  bool good = sh({ip, "link", "add", bridge_, "type", "bridge"}) &&
              sh({ip, "addr", "add", local_ip_ + "/24", "dev", bridge_}) && sh({ip, "link", "set", bridge_, "up"});
  for (int i = 0; good && i < hosts; ++i) {
    std::string ns = prefix_ + "h" + std::to_string(i);
    std::string outside = prefix_ + "v" + std::to_string(i), inside = prefix_ + "p" + std::to_string(i);
    good = sh({ip, "netns", "add", ns});
    if (!good) break;
    ns_.push_back(ns);
    good = sh({ip, "link", "add", outside, "type", "veth", "peer", "name", inside}) &&
           sh({ip, "link", "set", outside, "master", bridge_}) && sh({ip, "link", "set", outside, "up"}) &&
           sh({ip, "link", "set", inside, "netns", ns}) &&
           sh({ip, "-n", ns, "addr", "add", this->ip(i) + "/24", "dev", inside}) &&
           sh({ip, "-n", ns, "link", "set", inside, "up"}) && sh({ip, "-n", ns, "link", "set", "lo", "up"});
  }
  ok_ = good;
}

NetnsHosts::~NetnsHosts() {
  const std::string ip = ip_tool();
  if (ip.empty()) return;
  for (auto& ns : ns_) run_process({ip, "netns", "del", ns}, std::chrono::seconds(10));
  for (std::size_t i = 0; i < ns_.size(); ++i)
    run_process({ip, "link", "del", prefix_ + "v" + std::to_string(i)}, std::chrono::seconds(10));
  if (!bridge_.empty()) run_process({ip, "link", "del", bridge_}, std::chrono::seconds(10));
}

std::vector<std::string> NetnsHosts::on(int i) const { return {ip_tool(), "netns", "exec", ns_.at(static_cast<std::size_t>(i))}; }

std::string NetnsHosts::ip(int i) const { return "198.18." + std::to_string(subnet_) + "." + std::to_string(i + 2); }

void NetnsHosts::set_link(int i, bool up) {
  sh({ip_tool(), "link", "set", prefix_ + "v" + std::to_string(i), up ? "up" : "down"});
}

}  // namespace troupe::test
