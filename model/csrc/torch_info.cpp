// Exposes libtorch's own run-time reports (build configuration, parallel settings) to Rust as C strings.
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <cstring>
#include <string>

static size_t copy_out(const std::string& text, char* buffer, size_t capacity) {
  if (capacity > 0) {
    size_t n = text.size() < capacity - 1 ? text.size() : capacity - 1;
    std::memcpy(buffer, text.data(), n);
    buffer[n] = '\0';
  }
  return text.size();
}

extern "C" size_t recsys_torch_show_config(char* buffer, size_t capacity) {
  try {
    return copy_out(at::show_config(), buffer, capacity);
  } catch (...) {
    return 0;
  }
}

extern "C" size_t recsys_torch_parallel_info(char* buffer, size_t capacity) {
  try {
    return copy_out(at::get_parallel_info(), buffer, capacity);
  } catch (...) {
    return 0;
  }
}
