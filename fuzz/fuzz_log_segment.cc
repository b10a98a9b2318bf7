// Fuzz target: log recovery and reads over an arbitrary active segment file. The input becomes
// the bytes of partition 0's only segment; opening must recover (truncating whatever is not a
// valid batch) and every record read back must come from a batch that passed its CRC. Must never
// crash or hang.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "spate/log.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string root = [] {
    std::string t = (std::filesystem::temp_directory_path() / "spate-fuzz-XXXXXX").string();
    if (::mkdtemp(t.data()) == nullptr) std::abort();
    return t;
  }();
  std::string dir = root + "/log";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir + "/topics/t/0");
  {
    std::ofstream meta(dir + "/topics/t/topic.meta");
    meta << "version=1\npartitions=1\nretention_ms=-1\nretention_bytes=-1\ncompression=none\n";
    std::ofstream seg(dir + "/topics/t/0/00000000000000000000.log", std::ios::binary);
    seg.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  spate::LogConfig c;
  c.data_dir = dir;
  c.fsync = spate::FsyncPolicy::kNever;
  auto log = spate::open_embedded_log(c);
  if (!log.ok()) return 0;
  int64_t off = 0;
  for (int i = 0; i < 1000; ++i) {
    auto r = (*log)->fetch("t", 0, off, {});
    if (!r.ok() || r->records().empty()) break;
    off = r->next_offset;
  }
  spate::RecordIn rec;
  rec.value = "x";
  auto a = (*log)->append("t", 0, &rec, 1);
  if (!a.ok() || *a != off) __builtin_trap();  // recovery must leave an appendable log at its end
  (void)(*log)->close();
  return 0;
}
