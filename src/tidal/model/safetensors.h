// Safetensors files: an 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the raw tensor bytes (offsets are relative to the end of the header).
//
// SafetensorsFile memory-maps a file read-only; tensors are views into the mapping (zero-copy),
// valid while the SafetensorsFile lives. Every check that the format allows is made at open():
// header length within the file, valid JSON object, known dtype, non-negative shape, offsets
// in range and equal to numel * dtype size, no overlapping tensors. Errors name the file and
// the tensor.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "tidal/core/dtype.h"
#include "tidal/core/status.h"

namespace tidal {

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t offset = 0;  // absolute byte offset in the file
  uint64_t nbytes = 0;
  int64_t numel() const;
};

struct SafetensorsHeader {
  std::map<std::string, TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;  // 8 + header length
};

// Parses and validates the header of a whole file held in `file` (the fuzz target's entry
// point). `label` names the file in error messages.
Expected<SafetensorsHeader> parse_safetensors_header(std::span<const uint8_t> file,
                                                     const std::string& label);

class SafetensorsFile {
 public:
  static Expected<SafetensorsFile> open(const std::string& path);
  SafetensorsFile(SafetensorsFile&& o) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& o) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorInfo>& tensors() const { return header_.tensors; }
  const TensorInfo* find(const std::string& name) const;
  const void* data(const TensorInfo& t) const { return base_ + t.offset; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  SafetensorsHeader header_;
};

// Writes tensors to a safetensors file (used by `tidal model init` and tests). Each entry's
// bytes must be exactly numel * dtype size.
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::span<const uint8_t> bytes;
};
Status write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                         const std::map<std::string, std::string>& metadata = {});

// Streaming writer: the header is written from the tensors' specs up front, then their bytes are
// appended in order, in pieces of any size (e.g. one bounded bucket at a time), so the whole file
// never has to be held in memory. The file appears at `path` only at finish() (written to a
// temporary name and renamed, like write_safetensors); a writer destroyed before finish() removes
// its temporary file. Not thread-safe.
struct TensorSpec {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t nbytes() const;  // numel * dtype size
};
class SafetensorsWriter {
 public:
  static Expected<SafetensorsWriter> create(const std::string& path, std::vector<TensorSpec> tensors,
                                            const std::map<std::string, std::string>& metadata = {});
  SafetensorsWriter(SafetensorsWriter&& o) noexcept;
  SafetensorsWriter& operator=(SafetensorsWriter&& o) = delete;
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  ~SafetensorsWriter();

  // Appends the next bytes of the data section (tensors in the order given to create()).
  // Writing more bytes than the tensors need is an error.
  Status append(std::span<const uint8_t> bytes);
  // Instead of append(): sizes the file and maps its whole data section writable (MAP_SHARED);
  // the caller writes tensor i's bytes at data + data_offset(i), in any order and from any
  // thread, then calls finish(). No staging copy: on /dev/shm the mapping is the final memory.
  Expected<uint8_t*> map_data();
  uint64_t data_offset(size_t tensor_index) const { return offsets_[tensor_index]; }
  // Checks that every tensor's bytes were written (append) or unmaps (map_data), then renames the
  // file into place.
  Status finish();
  uint64_t data_bytes() const { return total_; }

 private:
  SafetensorsWriter() = default;
  Status append_raw(std::span<const uint8_t> bytes);
  std::string path_, tmp_;
  int fd_ = -1;
  uint64_t total_ = 0, written_ = 0, header_bytes_ = 0;
  std::vector<uint64_t> offsets_;
  uint8_t* map_ = nullptr;  // the whole file while mapped
};

}  // namespace tidal
