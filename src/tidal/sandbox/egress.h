// Egress: outbound network for sandboxes created with network "egress" (veth pair + NAT).
//
// Each egress sandbox gets a /30 out of the daemon's subnet (default 10.213.0.0/16): a veth pair
// whose host end (<prefix><slot>, address .1) stays in the daemon's network namespace and whose
// other end is eth0 (address .2, default route via .1) in the sandbox's. One nftables table per
// daemon (named after its root) masquerades the sandboxes' traffic leaving by any other interface
// and firewalls it:
//   - forward: sandboxes may not reach private, link-local, CGNAT or loopback ranges (the LAN, cloud
//     metadata at 169.254.169.254), nor each other;
//   - input: the host itself (the daemon's API, any host service) is unreachable from sandboxes;
//     only replies to connections the host opened pass.
// The daemon turns IPv4 forwarding on (net.ipv4.ip_forward = 1) and leaves it on. DNS: egress
// sandboxes get the host's non-loopback nameservers in /etc/resolv.conf (none: no DNS).
//
// Needs the `ip` (iproute2) and `nft` (nftables) programs and CAP_NET_ADMIN; open() reports what
// is missing and the service then answers 501 for "egress". Thread-safety: every method is safe
// from any thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tidal/core/status.h"

namespace tidal::sandbox {

class Egress {
 public:
  // `name`: unique per daemon (its root hash): names the nft table and, shortened, the host
  // interfaces. `subnet`: "a.b.0.0/16".
  [[nodiscard]] static Expected<std::unique_ptr<Egress>> open(const std::string& name, const std::string& subnet);
  ~Egress();  // removes the nft table

  // Connects the network namespace of process `pid` (a sandbox's init): creates the veth pair and
  // configures both ends. Returns the slot (pass it to detach()).
  [[nodiscard]] Expected<int> attach(pid_t pid);
  // Frees the slot and deletes the host end (the sandbox end dies with its namespace anyway).
  void detach(int slot);
  // "nameserver ..." lines for the sandboxes' /etc/resolv.conf.
  const std::string& resolv_conf() const { return resolv_conf_; }
  // The sandbox-side address of a slot, e.g. "10.213.0.6".
  std::string sandbox_address(int slot) const;

 private:
  Egress() = default;
  std::string address(int slot, int host_part) const;
  std::string ifname(int slot) const;

  std::string table_, prefix_;
  uint32_t base_ = 0;  // subnet base address (host order)
  std::string resolv_conf_;
  std::mutex mu_;
  std::vector<bool> used_;  // guarded by mu_
  int next_ = 0;            // guarded by mu_: slots are handed out round-robin
};

// Runs `argv` (no shell) and waits; kUnavailable-style failures are kInternal with its stderr.
// `input` is written to its stdin.
[[nodiscard]] Status run_tool(const std::vector<std::string>& argv, const std::string& input = {});

}  // namespace tidal::sandbox
