#include "tidal/sandbox/egress.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

extern char** environ;

namespace tidal::sandbox {

Status run_tool(const std::vector<std::string>& argv, const std::string& input) {
  int in[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0) return io_error(std::string("pipe: ") + std::strerror(errno));
  if (pipe2(err, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    return io_error(std::string("pipe: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, cargv[0], &fa, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(in[0]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(in[1]);
    ::close(err[0]);
    return internal_error("cannot run " + argv[0] + ": " + std::strerror(rc));
  }
  size_t off = 0;
  while (off < input.size()) {
    ssize_t n = ::write(in[1], input.data() + off, input.size() - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  ::close(in[1]);
  std::string errors;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(err[0], buf, sizeof(buf))) > 0) errors.append(buf, static_cast<size_t>(n));
  ::close(err[0]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    while (!errors.empty() && errors.back() == '\n') errors.pop_back();
    return internal_error("'" + cmd + "' failed: " + (errors.empty() ? "exit " + std::to_string(WEXITSTATUS(st)) : errors));
  }
  return Status::ok();
}

Expected<std::unique_ptr<Egress>> Egress::open(const std::string& name, const std::string& subnet) {
  std::unique_ptr<Egress> e(new Egress());
  size_t slash = subnet.find('/');
  in_addr addr{};
  if (slash == std::string::npos || subnet.substr(slash + 1) != "16" ||
      inet_pton(AF_INET, subnet.substr(0, slash).c_str(), &addr) != 1 || (ntohl(addr.s_addr) & 0xffff) != 0) {
    return invalid_argument("egress subnet must be a.b.0.0/16, got '" + subnet + "'");
  }
  e->base_ = ntohl(addr.s_addr);
  e->table_ = "tidal_" + name;
  e->prefix_ = "tsb" + name.substr(0, 4) + "-";  // + slot (<= 5 digits): within IFNAMSIZ
  e->used_.assign(16384, false);
  // Forwarding on, then our table (replaced if a previous daemon left it).
  {
    std::ofstream f("/proc/sys/net/ipv4/ip_forward");
    f << "1\n";
    f.flush();
    if (!f) return unimplemented("cannot enable net.ipv4.ip_forward (needs CAP_NET_ADMIN in the host's network namespace)");
  }
  (void)run_tool({"nft", "delete", "table", "ip", e->table_});
  std::string wild = e->prefix_ + "*";
  std::string rules =
      "table ip " + e->table_ + " {\n"
      "  chain sb_post {\n"
      "    type nat hook postrouting priority srcnat; policy accept;\n"
      "    ip saddr " + subnet + " oifname != \"" + wild + "\" masquerade\n"
      "  }\n"
      "  chain sb_forward {\n"
      "    type filter hook forward priority filter; policy accept;\n"
      "    iifname \"" + wild + "\" oifname \"" + wild + "\" drop\n"
      "    iifname \"" + wild + "\" ip daddr { 0.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16,"
      " 172.16.0.0/12, 192.168.0.0/16, 224.0.0.0/3 } drop\n"
      "  }\n"
      "  chain sb_input {\n"
      "    type filter hook input priority filter; policy accept;\n"
      "    iifname \"" + wild + "\" ct state established,related accept\n"
      "    iifname \"" + wild + "\" drop\n"
      "  }\n"
      "}\n";
  Status s = run_tool({"nft", "-f", "-"}, rules);
  if (!s.is_ok()) return unimplemented("egress networking needs nftables: " + s.message());
  // DNS for the sandboxes: the host's nameservers, except loopback ones (unreachable from there).
  std::ifstream rc("/etc/resolv.conf");
  std::string line;
  while (std::getline(rc, line)) {
    std::istringstream ls(line);
    std::string key, server;
    ls >> key >> server;
    if (key == "nameserver" && server.rfind("127.", 0) != 0 && server != "::1") {
      e->resolv_conf_ += "nameserver " + server + "\n";
    }
  }
  return e;
}

Egress::~Egress() { (void)run_tool({"nft", "delete", "table", "ip", table_}); }

std::string Egress::address(int slot, int host_part) const {
  uint32_t a = base_ + static_cast<uint32_t>(slot) * 4 + static_cast<uint32_t>(host_part);
  in_addr addr{htonl(a)};
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &addr, buf, sizeof(buf));
  return buf;
}

std::string Egress::sandbox_address(int slot) const { return address(slot, 2); }

std::string Egress::ifname(int slot) const { return prefix_ + std::to_string(slot); }

Expected<int> Egress::attach(pid_t pid) {
  int slot = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < used_.size() && slot < 0; ++i) {
      int k = static_cast<int>((static_cast<size_t>(next_) + i) % used_.size());
      if (k == 0) continue;  // keep .0/30 unused (the network address of the subnet)
      if (!used_[static_cast<size_t>(k)]) slot = k;
    }
    if (slot < 0) return resource_exhausted("no free egress address (16383 egress sandboxes are live)");
    used_[static_cast<size_t>(slot)] = true;
    next_ = slot + 1;
  }
  std::string host_if = ifname(slot), p = std::to_string(pid);
  (void)run_tool({"ip", "link", "del", host_if});  // a previous owner's, not yet gone with its namespace
  std::string batch = "link add " + host_if + " type veth peer name eth0 netns " + p + "\n" +
                      "addr add " + address(slot, 1) + "/30 dev " + host_if + "\n" +
                      "link set " + host_if + " up\n";
  Status s = run_tool({"ip", "-batch", "-"}, batch);
  if (s.is_ok()) {
    std::string inside = "addr add " + address(slot, 2) + "/30 dev eth0\n"
                         "link set eth0 up\n"
                         "route add default via " + address(slot, 1) + "\n";
    s = run_tool({"nsenter", "--net=/proc/" + p + "/ns/net", "ip", "-batch", "-"}, inside);
  }
  if (!s.is_ok()) {
    detach(slot);
    return internal_error("egress setup: " + s.message());
  }
  return slot;
}

void Egress::detach(int slot) {
  (void)run_tool({"ip", "link", "del", ifname(slot)});
  std::lock_guard<std::mutex> lock(mu_);
  if (slot >= 0 && static_cast<size_t>(slot) < used_.size()) used_[static_cast<size_t>(slot)] = false;
}

}  // namespace tidal::sandbox
