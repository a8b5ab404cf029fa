#include "tidal/model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

namespace tidal {

using json = nlohmann::json;

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the format's own limit is 100 MB

bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_mul_overflow(a, b, out); }

}  // namespace

Expected<SafetensorsHeader> parse_safetensors_header(std::span<const uint8_t> file,
                                                     const std::string& label) {
  if (file.size() < 8) {
    return data_loss(label + ": file is " + std::to_string(file.size()) +
                     " bytes, too short for a safetensors header");
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | file[size_t(i)];
  if (n > kMaxHeaderBytes) {
    return data_loss(label + ": header length " + std::to_string(n) + " exceeds the 100 MB limit");
  }
  if (n > file.size() - 8) {
    return data_loss(label + ": header length " + std::to_string(n) + " runs past the end of the file (" +
                     std::to_string(file.size()) + " bytes): truncated or not a safetensors file");
  }
  SafetensorsHeader h;
  h.data_start = 8 + n;
  const uint64_t data_size = file.size() - h.data_start;
  json j = json::parse(file.begin() + 8, file.begin() + 8 + std::ptrdiff_t(n), nullptr, false);
  if (j.is_discarded()) return data_loss(label + ": header is not valid JSON");
  if (!j.is_object()) return data_loss(label + ": header is not a JSON object");

  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) return data_loss(label + ": __metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) return data_loss(label + ": __metadata__." + m.key() + " is not a string");
        h.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = label + ": tensor '" + name + "'";
    if (!v.is_object()) return data_loss(where + " entry is not an object");
    auto dt = v.find("dtype");
    auto sh = v.find("shape");
    auto off = v.find("data_offsets");
    if (dt == v.end() || !dt->is_string()) return data_loss(where + " has no string 'dtype'");
    if (sh == v.end() || !sh->is_array()) return data_loss(where + " has no 'shape' array");
    if (off == v.end() || !off->is_array() || off->size() != 2) {
      return data_loss(where + " has no 'data_offsets' [begin, end] pair");
    }
    TensorInfo t;
    t.name = name;
    const std::string dname = dt->get<std::string>();
    auto dtype = dtype_from_name(dname);
    if (!dtype || dname != dtype_name(*dtype)) {
      return unimplemented(where + " has unsupported dtype '" + dname + "'");
    }
    t.dtype = *dtype;
    uint64_t numel = 1;
    if (sh->size() > 8) return data_loss(where + " has " + std::to_string(sh->size()) + " dimensions");
    for (const json& d : *sh) {
      if (!d.is_number_unsigned()) return data_loss(where + " has a shape entry that is not a non-negative integer");
      uint64_t dim = d.get<uint64_t>();
      if (dim > (1ull << 40) || mul_overflows(numel, dim, &numel)) return data_loss(where + " shape is too large");
      t.shape.push_back(int64_t(dim));
    }
    for (const json& o : *off) {
      if (!o.is_number_unsigned()) return data_loss(where + " data_offsets are not non-negative integers");
    }
    const uint64_t b = (*off)[0].get<uint64_t>(), e = (*off)[1].get<uint64_t>();
    uint64_t expect = 0;
    if (mul_overflows(numel, dtype_size(t.dtype), &expect)) return data_loss(where + " shape is too large");
    if (e < b) return data_loss(where + " data_offsets end before they begin");
    if (e > data_size) {
      return data_loss(where + " data_offsets [" + std::to_string(b) + ", " + std::to_string(e) +
                       "] run past the end of the data (" + std::to_string(data_size) +
                       " bytes): file truncated or header wrong");
    }
    if (e - b != expect) {
      return data_loss(where + " shape " + sh->dump() + " " + dname + " needs " + std::to_string(expect) +
                       " bytes but data_offsets span " + std::to_string(e - b));
    }
    t.offset = h.data_start + b;
    t.nbytes = expect;
    if (expect > 0) ranges.emplace_back(b, e);
    h.tensors.emplace(name, std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) return data_loss(label + ": two tensors' data_offsets overlap");
  }
  return h;
}

Expected<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return not_found(path + ": no such file");
    return io_error(path + ": cannot open: " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return io_error(path + ": cannot stat: " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return invalid_argument(path + ": not a regular file");
  }
  SafetensorsFile f;
  f.path_ = path;
  f.size_ = size_t(st.st_size);
  if (f.size_ > 0) {
    void* p = ::mmap(nullptr, f.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      return io_error(path + ": mmap failed: " + std::strerror(errno));
    }
    f.base_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  auto h = parse_safetensors_header(std::span<const uint8_t>(f.base_, f.size_), path);
  if (!h) return h.status();
  f.header_ = std::move(h).value();
  return f;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept
    : path_(std::move(o.path_)), base_(o.base_), size_(o.size_), header_(std::move(o.header_)) {
  o.base_ = nullptr;
  o.size_ = 0;
}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
  if (this != &o) {
    if (base_) ::munmap(const_cast<uint8_t*>(base_), size_);
    path_ = std::move(o.path_);
    base_ = o.base_;
    size_ = o.size_;
    header_ = std::move(o.header_);
    o.base_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() {
  if (base_) ::munmap(const_cast<uint8_t*>(base_), size_);
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = header_.tensors.find(name);
  return it == header_.tensors.end() ? nullptr : &it->second;
}

uint64_t TensorSpec::nbytes() const {
  uint64_t numel = 1;
  for (int64_t d : shape) numel *= uint64_t(d);
  return numel * dtype_size(dtype);
}

Expected<SafetensorsWriter> SafetensorsWriter::create(const std::string& path, std::vector<TensorSpec> tensors,
                                                      const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::vector<uint64_t> offsets;
  for (const auto& t : tensors) {
    if (t.name == "__metadata__") return invalid_argument(path + ": '__metadata__' is not a tensor name");
    if (header.contains(t.name)) return invalid_argument(path + ": tensor '" + t.name + "' is listed twice");
    const uint64_t n = t.nbytes();
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + n}}};
    offsets.push_back(offset);
    offset += n;
  }
  std::string text = header.dump();
  // Pad the header with spaces so tensor data starts 8-byte aligned (as the reference writer does).
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  SafetensorsWriter w;
  w.path_ = path;
  // NOTE: written to a temporary name and renamed into place, so a reader that has the old file
  // mapped keeps a valid mapping (truncating a mapped file in place raises SIGBUS in the reader),
  // and a crash never leaves a half-written model behind.
  w.tmp_ = path + ".tmp." + std::to_string(::getpid());
  w.fd_ = ::open(w.tmp_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);  // RDWR: map_data
  if (w.fd_ < 0) return io_error(path + ": cannot create: " + std::strerror(errno));
  w.total_ = offset;
  w.offsets_ = std::move(offsets);
  w.header_bytes_ = 8 + text.size();
  uint8_t len[8];
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(n >> (8 * i));
  w.written_ = 0;
  Status st = w.append_raw(std::span<const uint8_t>(len, 8));
  if (st.is_ok()) st = w.append_raw(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  if (!st.is_ok()) return st;
  return w;
}

SafetensorsWriter::SafetensorsWriter(SafetensorsWriter&& o) noexcept
    : path_(std::move(o.path_)), tmp_(std::move(o.tmp_)), fd_(o.fd_), total_(o.total_), written_(o.written_),
      header_bytes_(o.header_bytes_), offsets_(std::move(o.offsets_)), map_(o.map_) {
  o.fd_ = -1;
  o.tmp_.clear();
  o.map_ = nullptr;
}

SafetensorsWriter::~SafetensorsWriter() {
  if (map_) ::munmap(map_, header_bytes_ + total_);
  if (fd_ >= 0) ::close(fd_);
  if (!tmp_.empty()) std::remove(tmp_.c_str());
}

Status SafetensorsWriter::append_raw(std::span<const uint8_t> bytes) {
  const uint8_t* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    const ssize_t k = ::write(fd_, p, left);
    if (k < 0) {
      if (errno == EINTR) continue;
      return io_error(path_ + ": write failed: " + std::strerror(errno));
    }
    p += k;
    left -= size_t(k);
  }
  return Status::ok();
}

Expected<uint8_t*> SafetensorsWriter::map_data() {
  if (fd_ < 0 || map_ || written_ != 0) return internal_error(path_ + ": map_data after append, map_data or finish");
  const uint64_t size = header_bytes_ + total_;
  if (::ftruncate(fd_, off_t(size)) != 0) return io_error(path_ + ": cannot size to " + std::to_string(size) + " bytes: " + std::strerror(errno));
  if (total_ == 0) return static_cast<uint8_t*>(nullptr);
  // MAP_POPULATE: the pages are allocated in one go instead of one fault per 4 KiB page.
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd_, 0);
  if (p == MAP_FAILED) return io_error(path_ + ": mmap for writing failed: " + std::strerror(errno));
  map_ = static_cast<uint8_t*>(p);
  written_ = total_;  // the caller owns the contents from here
  return map_ + header_bytes_;
}

Status SafetensorsWriter::append(std::span<const uint8_t> bytes) {
  if (fd_ < 0) return internal_error(path_ + ": append after finish");
  if (map_) return internal_error(path_ + ": append after map_data");
  if (bytes.size() > total_ - written_) {
    return invalid_argument(path_ + ": " + std::to_string(written_ + bytes.size()) +
                            " bytes of tensor data written, the header describes " + std::to_string(total_));
  }
  TIDAL_RETURN_IF_ERROR(append_raw(bytes));
  written_ += bytes.size();
  return Status::ok();
}

Status SafetensorsWriter::finish() {
  if (fd_ < 0) return internal_error(path_ + ": finish called twice");
  if (written_ != total_) {
    return invalid_argument(path_ + ": only " + std::to_string(written_) + " of " + std::to_string(total_) +
                            " bytes of tensor data were written");
  }
  if (map_) {
    ::munmap(map_, header_bytes_ + total_);
    map_ = nullptr;
  }
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) return io_error(path_ + ": write failed: " + std::strerror(errno));
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    return io_error(path_ + ": cannot rename into place: " + std::strerror(errno));
  }
  tmp_.clear();
  return Status::ok();
}

Status write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                         const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSpec> specs;
  for (const auto& t : tensors) {
    TensorSpec s{t.name, t.dtype, t.shape};
    if (s.nbytes() != t.bytes.size()) {
      return invalid_argument(path + ": tensor '" + t.name + "' has " + std::to_string(t.bytes.size()) +
                              " bytes, its shape needs " + std::to_string(s.nbytes()));
    }
    specs.push_back(std::move(s));
  }
  TIDAL_ASSIGN_OR_RETURN(SafetensorsWriter w, SafetensorsWriter::create(path, std::move(specs), metadata));
  for (const auto& t : tensors) TIDAL_RETURN_IF_ERROR(w.append(t.bytes));
  return w.finish();
}

}  // namespace tidal
