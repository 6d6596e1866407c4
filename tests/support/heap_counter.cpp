// The malloc-family wrappers behind heap_counter.h. Setting DDPM_TRACE_ALLOCATIONS prints a
// backtrace for the first few allocations of ours and for every oneDNN allocation over 4 KiB.
#include "heap_counter.h"

#include <execinfo.h>

#include <atomic>
#include <cstdlib>

#include "kernels/cpu/dnnl_context.h"

namespace {

std::atomic<bool> counting{false};
std::atomic<long> ours{0}, in_dnnl{0}, dnnl_max_bytes{0};

void trace() {
  static thread_local bool tracing = false;  // backtrace() may allocate itself
  if (tracing || !std::getenv("DDPM_TRACE_ALLOCATIONS")) return;
  tracing = true;
  void* frames[32];
  backtrace_symbols_fd(frames, backtrace(frames, 32), 2);
  tracing = false;
}

void note(size_t bytes) {
  if (!counting.load(std::memory_order_relaxed)) return;
  if (ddpm::cpu::inside_dnnl_execute()) {
    if (bytes > 4096) trace();
    in_dnnl.fetch_add(1);
    long prev = dnnl_max_bytes.load();
    while (static_cast<long>(bytes) > prev && !dnnl_max_bytes.compare_exchange_weak(prev, static_cast<long>(bytes))) {
    }
  } else if (ours.fetch_add(1) < 3) {
    trace();
  }
}

}  // namespace

#if defined(__SANITIZE_ADDRESS__)
#define DDPM_HEAP_COUNTER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DDPM_HEAP_COUNTER_ASAN 1
#endif
#endif

#ifdef DDPM_HEAP_COUNTER_ASAN
// Under AddressSanitizer (DDPM_SANITIZE) the sanitizer owns malloc: replacing it would hand glibc
// blocks to ASan's free. Count through ASan's allocation hook instead.
// Declared here: GCC ships no sanitizer/allocator_interface.h, but its libasan exports this.
extern "C" int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void*, size_t),
                                                         void (*free_hook)(const volatile void*));

namespace {
void on_malloc(const volatile void*, size_t bytes) { note(bytes); }
void on_free(const volatile void*) {}
[[maybe_unused]] const int hooks_installed = __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
}  // namespace
#else
extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void* malloc(size_t n) { note(n); return __libc_malloc(n); }
void* calloc(size_t a, size_t b) { note(a * b); return __libc_calloc(a, b); }
void* realloc(void* p, size_t n) { note(n); return __libc_realloc(p, n); }
void* aligned_alloc(size_t al, size_t n) { note(n); return __libc_memalign(al, n); }
void* memalign(size_t al, size_t n) { note(n); return __libc_memalign(al, n); }
int posix_memalign(void** p, size_t al, size_t n) {
  note(n);
  *p = __libc_memalign(al, n);
  return *p ? 0 : 12;  // ENOMEM
}
}
#endif

namespace ddpm::test {

void start_heap_count() {
  ours = 0;
  in_dnnl = 0;
  dnnl_max_bytes = 0;
  counting = true;
}

HeapCount stop_heap_count() {
  counting = false;
  return {ours.load(), in_dnnl.load(), dnnl_max_bytes.load()};
}

}  // namespace ddpm::test
