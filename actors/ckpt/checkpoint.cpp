#include "actors/ckpt/checkpoint.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "actors/nn/model.hpp"
#include "actors/optim/optimizer.hpp"

namespace troupe::ckpt {

namespace {

constexpr char kMagic[8] = {'T', 'R', 'O', 'U', 'P', 'E', 'C', 'K'};

// Little-endian fields (troupe runs on little-endian hosts; the magic and CRC
// catch a file from anywhere else).
class Writer {
 public:
  template <class T>
  void put(T v) {
    const auto* p = reinterpret_cast<const char*>(&v);
    buf.append(p, sizeof v);
  }
  void str16(const std::string& s) {
    put<std::uint16_t>(static_cast<std::uint16_t>(s.size()));
    buf += s;
  }
  void str32(const std::string& s) {
    put<std::uint32_t>(static_cast<std::uint32_t>(s.size()));
    buf += s;
  }
  std::string buf;
};

class Reader {
 public:
  Reader(const std::string& path, const char* p, std::size_t n) : path_(path), p_(p), n_(n) {}
  template <class T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, p_ + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }
  std::string str(std::size_t len) {
    need(len);
    std::string s(p_ + pos_, len);
    pos_ += len;
    return s;
  }
  std::size_t pos() const { return pos_; }

 private:
  void need(std::size_t k) {
    if (k > n_ - pos_) throw CheckpointError(fmt::format("{}: corrupt checkpoint: its header runs past its end", path_));
  }
  const std::string& path_;
  const char* p_;
  std::size_t n_, pos_ = 0;
};

uLong crc_update(uLong crc, const char* p, std::size_t n) {
  while (n > 0) {
    const auto k = static_cast<uInt>(std::min<std::size_t>(n, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(p), k);
    p += k;
    n -= k;
  }
  return crc;
}

std::uint32_t crc_of(const char* p, std::size_t n) { return static_cast<std::uint32_t>(crc_update(crc32(0L, Z_NULL, 0), p, n)); }

void write_all(int fd, const char* p, std::size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw CheckpointError(fmt::format("{}: write failed: {}", path, std::strerror(errno)));
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

}  // namespace

const Tensor* Checkpoint::find(const std::string& name) const {
  for (auto& [n, t] : tensors)
    if (n == name) return &t;
  return nullptr;
}

void save(const std::string& path, const Checkpoint& c) {
  Writer h;
  h.put<std::uint32_t>(static_cast<std::uint32_t>(c.meta.size()));
  for (auto& [k, v] : c.meta) {
    h.str16(k);
    h.str32(v);
  }
  h.put<std::uint32_t>(static_cast<std::uint32_t>(c.tensors.size()));
  std::uint64_t offset = 0;
  std::vector<Tensor> host;
  for (auto& [name, t] : c.tensors) {
    if (!t.defined()) throw CheckpointError(fmt::format("{}: tensor '{}' is undefined", path, name));
    host.push_back(t.device().is_cuda() || !t.contiguous() ? t.to(compute::Device::cpu()) : t);
    h.str16(name);
    h.put<std::uint8_t>(static_cast<std::uint8_t>(t.dtype()));
    h.put<std::uint8_t>(static_cast<std::uint8_t>(t.dim()));
    for (auto d : t.shape()) h.put<std::int64_t>(d);
    h.put<std::uint64_t>(offset);
    h.put<std::uint64_t>(t.nbytes());
    offset += t.nbytes();
  }
  Writer head;
  head.buf.append(kMagic, sizeof kMagic);
  head.put<std::uint32_t>(kFormatVersion);
  head.put<std::uint32_t>(static_cast<std::uint32_t>(h.buf.size()));
  head.buf += h.buf;

  const std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw CheckpointError(fmt::format("{}: cannot create: {}", tmp, std::strerror(errno)));
  try {
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc_update(crc, head.buf.data(), head.buf.size());
    write_all(fd, head.buf.data(), head.buf.size(), tmp);
    for (auto& t : host) {
      const auto* p = static_cast<const char*>(t.raw());
      crc = crc_update(crc, p, t.nbytes());
      write_all(fd, p, t.nbytes(), tmp);
    }
    const auto crc32v = static_cast<std::uint32_t>(crc);
    write_all(fd, reinterpret_cast<const char*>(&crc32v), sizeof crc32v, tmp);
    if (::fsync(fd) != 0) throw CheckpointError(fmt::format("{}: fsync failed: {}", tmp, std::strerror(errno)));
    ::close(fd);
    fd = -1;
    if (::rename(tmp.c_str(), path.c_str()) != 0)
      throw CheckpointError(fmt::format("{}: rename from {} failed: {}", path, tmp, std::strerror(errno)));
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  // The rename itself reaches the disk only with the folder.
  auto dir = std::filesystem::path(path).parent_path();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

Checkpoint load(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw CheckpointError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  std::string file(static_cast<std::size_t>(in.tellg()), '\0');
  in.seekg(0);
  if (!in.read(file.data(), static_cast<std::streamsize>(file.size())))
    throw CheckpointError(fmt::format("{}: read failed", path));
  if (file.size() < sizeof kMagic + 12 || std::memcmp(file.data(), kMagic, sizeof kMagic) != 0)
    throw CheckpointError(fmt::format("{}: not a troupe checkpoint (no TROUPECK header)", path));
  const std::size_t body = file.size() - 4;
  std::uint32_t stored = 0;
  std::memcpy(&stored, file.data() + body, 4);
  Reader r(path, file.data() + sizeof kMagic, body - sizeof kMagic);
  const auto version = r.get<std::uint32_t>();
  if (version != kFormatVersion)
    throw CheckpointError(fmt::format("{}: checkpoint format version {}; this troupe reads version {}", path, version,
                                      kFormatVersion));
  if (crc_of(file.data(), body) != stored)
    throw CheckpointError(fmt::format("{}: corrupt checkpoint: checksum mismatch (the file was truncated or changed)", path));
  const auto header_len = r.get<std::uint32_t>();
  Checkpoint c;
  const auto nmeta = r.get<std::uint32_t>();
  for (std::uint32_t i = 0; i < nmeta; ++i) {
    std::string k = r.str(r.get<std::uint16_t>());
    c.meta[k] = r.str(r.get<std::uint32_t>());
  }
  const auto ntensors = r.get<std::uint32_t>();
  struct Entry {
    std::string name;
    compute::DType dtype;
    compute::Shape shape;
    std::uint64_t offset, bytes;
  };
  std::vector<Entry> entries;
  for (std::uint32_t i = 0; i < ntensors; ++i) {
    Entry e;
    e.name = r.str(r.get<std::uint16_t>());
    const auto dt = r.get<std::uint8_t>();
    if (dt > static_cast<std::uint8_t>(compute::DType::i32))
      throw CheckpointError(fmt::format("{}: tensor '{}' has unknown dtype {}", path, e.name, dt));
    e.dtype = static_cast<compute::DType>(dt);
    const auto nd = r.get<std::uint8_t>();
    for (int d = 0; d < nd; ++d) e.shape.push_back(r.get<std::int64_t>());
    e.offset = r.get<std::uint64_t>();
    e.bytes = r.get<std::uint64_t>();
    entries.push_back(std::move(e));
  }
  const std::size_t payload = sizeof kMagic + 8 + header_len;
  if (r.pos() + sizeof kMagic != payload)
    throw CheckpointError(fmt::format("{}: corrupt checkpoint: header length disagrees with its contents", path));
  for (auto& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    if (t.nbytes() != e.bytes || e.offset > body - payload || e.bytes > body - payload - e.offset)
      throw CheckpointError(fmt::format("{}: corrupt checkpoint: tensor '{}' does not fit the file", path, e.name));
    std::memcpy(t.raw(), file.data() + payload + e.offset, e.bytes);
    c.tensors.emplace_back(e.name, std::move(t));
  }
  return c;
}

const std::string& Checkpoint::require(const std::string& key, const std::string& path, const std::string& what) const {
  auto it = meta.find(key);
  if (it == meta.end()) throw CheckpointError(fmt::format("{}: not {}'s checkpoint (no '{}')", path, what, key));
  return it->second;
}

void Checkpoint::check(const std::string& kind, const std::map<std::string, std::string>& identity,
                       const std::string& path, const std::string& what) const {
  if (require("kind", path, what) != kind)
    throw CheckpointError(fmt::format("{}: a '{}' checkpoint, not {}'s", path, meta.at("kind"), what));
  // Every difference at once: a user who changed the model and the split
  // sees both, not one per attempt.
  std::string there, here;
  for (auto& [key, want] : identity) {
    auto it = meta.find(key);
    const std::string had = it == meta.end() ? "(not recorded)" : it->second;
    if (had == want) continue;
    there += fmt::format("{}{} = {}", there.empty() ? "" : ", ", key, had);
    here += fmt::format("{}{} = {}", here.empty() ? "" : ", ", key, want);
  }
  if (!there.empty())
    throw CheckpointError(fmt::format("{}: written with {}, but this run has {}", path, there, here));
}

Checkpoint snapshot(nn::Model& model, optim::Optimizer* opt, std::map<std::string, std::string> meta) {
  return snapshot(model.params(), opt, std::move(meta));
}

Checkpoint snapshot(const std::vector<nn::Param*>& params, optim::Optimizer* opt, std::map<std::string, std::string> meta) {
  Checkpoint c;
  c.meta = std::move(meta);
  for (nn::Param* p : params) c.tensors.emplace_back("model/" + p->name, p->value);
  if (opt) {
    c.meta["optimizer"] = opt->kind();
    c.meta["optimizer.steps"] = std::to_string(opt->steps());
    c.meta["optimizer.lr"] = fmt::format("{}", opt->lr());
    for (auto& [k, t] : opt->state()) c.tensors.emplace_back("optim/" + k, t);
  }
  return c;
}

void restore(const Checkpoint& c, nn::Model& model, optim::Optimizer* opt) {
  restore(c, model.params(), model.device(), opt);
}

void restore(const Checkpoint& c, const std::vector<nn::Param*>& params, compute::Device dev, optim::Optimizer* opt) {
  // Check everything first: a refused checkpoint leaves the model as it was.
  std::size_t model_tensors = 0;
  for (auto& [name, t] : c.tensors) model_tensors += name.rfind("model/", 0) == 0;
  for (nn::Param* p : params) {
    const Tensor* t = c.find("model/" + p->name);
    if (!t) throw CheckpointError(fmt::format("checkpoint does not fit this model: it has no parameter '{}'", p->name));
    if (t->shape() != p->value.shape() || t->dtype() != p->value.dtype())
      throw CheckpointError(fmt::format("checkpoint does not fit this model: parameter '{}' is {} there, {} here", p->name,
                                        t->describe(), p->value.describe()));
  }
  if (model_tensors != params.size())
    throw CheckpointError(fmt::format("checkpoint does not fit this model: it has {} parameters, the model {}",
                                      model_tensors, params.size()));
  if (opt) {
    auto it = c.meta.find("optimizer");
    if (it == c.meta.end()) throw CheckpointError("checkpoint holds no optimizer state");
    if (it->second != opt->kind())
      throw CheckpointError(fmt::format("checkpoint holds {} optimizer state, the run uses {}", it->second, opt->kind()));
  }
  for (nn::Param* p : params) {
    p->value.copy_from(*c.find("model/" + p->name));
    p->grad_valid = false;
  }
  if (opt) {
    opt->state().clear();
    for (auto& [name, t] : c.tensors)
      if (name.rfind("optim/", 0) == 0) opt->state()[name.substr(6)] = t.to(dev);
    auto steps = c.meta.find("optimizer.steps");
    if (steps != c.meta.end()) opt->set_steps(std::stoll(steps->second));
    auto lr = c.meta.find("optimizer.lr");
    if (lr != c.meta.end()) opt->set_lr(std::stof(lr->second));
  }
}

}  // namespace troupe::ckpt
