#include "hpc/memory.h"

#include <malloc.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

// gperftools' C API: defined when tcmalloc is linked in, null otherwise.
extern "C" void MallocExtension_ReleaseFreeMemory(void) __attribute__((weak));

namespace dancegrpo::hpc {
namespace {

int64_t StatusField(const char* key) {  // "VmHWM:   1234 kB"
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(key);
  while (std::getline(in, line)) {
    if (line.compare(0, n, key) == 0) return std::stoll(line.substr(n + 1)) * 1024;
  }
  return 0;
}

}  // namespace

int64_t PeakRss() { return StatusField("VmHWM"); }

bool ResetPeakRss() {
  std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (!f) return false;
  const bool ok = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && ok;
}

int64_t MachineMemoryBytes() {
  int64_t total = 0;
  {
    std::ifstream in("/proc/meminfo");
    std::string key;
    int64_t kb = 0;
    while (in >> key >> kb) {
      if (key == "MemTotal:") {
        total = kb * 1024;
        break;
      }
      in.ignore(256, '\n');
    }
  }
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream in(path);
    std::string value;
    if (in >> value && value != "max") {
      try {
        const int64_t limit = std::stoll(value);
        if (limit > 0 && (total == 0 || limit < total)) total = limit;
      } catch (...) {
      }
    }
  }
  return total;
}

void ReleaseFreeMemory() {
  if (MallocExtension_ReleaseFreeMemory != nullptr) {
    MallocExtension_ReleaseFreeMemory();
  } else {
    malloc_trim(0);
  }
}

}  // namespace dancegrpo::hpc
