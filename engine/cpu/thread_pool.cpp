#include "engine/cpu/thread_pool.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "engine/cpu/simd_target.h"
#include "host/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace vkssm {
namespace {

// Tells the core that this thread is spinning (frees resources for its SMT sibling).
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// How long an idle worker spins before sleeping: long enough to catch the next job of a step
// (the caller's work between two parallel_for is a few microseconds), short enough not to burn a
// core that other processes want (on a loaded machine a spinning thread takes the time slice of
// the very thread it waits for).
constexpr int kSpinRounds = 2000;
// The caller spins this long for the workers to finish, then yields its core between checks.
constexpr int kWaitSpinRounds = 1000;

}  // namespace

int cpu_thread_count(int requested) {
  if (requested > 0) return requested;
  if (const char* env = std::getenv("VKSSM_THREADS"); env && *env) {
    char* end = nullptr;
    const long v = std::strtol(env, &end, 10);
    if (*end != '\0' || v < 1 || v > 1024)
      throw Error(std::string("VKSSM_THREADS='") + env + "' is not a thread count in [1, 1024]");
    return int(v);
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

ThreadPool::ThreadPool(int threads) {
  choose_simd_target();  // before any kernel runs (simd_target.h)
  const int n = cpu_thread_count(threads);
  workers_.reserve(size_t(n - 1));
  for (int t = 1; t < n; ++t) workers_.emplace_back([this, t] { worker_loop(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::run(size_t n, size_t grain, Task task, void* ctx) {
  if (n == 0) return;
  grain = std::max<size_t>(grain, 1);
  // About 4 chunks per thread: enough to balance a thread that another process slows down.
  const size_t per = (n + size_t(size()) * 4 - 1) / (size_t(size()) * 4);
  const size_t chunk = std::max(grain, (per + grain - 1) / grain * grain);
  if (workers_.empty() || chunk >= n) {
    task(ctx, 0, n, 0);
    return;
  }
  ++job_;
  Job& job = jobs_[job_ & 1];
  job.task.store(task, std::memory_order_relaxed);
  job.ctx.store(ctx, std::memory_order_relaxed);
  job.n.store(n, std::memory_order_relaxed);
  job.chunk.store(chunk, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  cursor_.store(uint64_t(job_) << 32, std::memory_order_release);  // publishes the job
  {
    // Under the mutex, so a worker between its check and its wait cannot miss the bump.
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  work(0);
  for (int i = 0; done_.load(std::memory_order_acquire) != n; ++i) {
    if (i < kWaitSpinRounds) cpu_relax();
    else std::this_thread::yield();
  }
}

void ThreadPool::work(int thread) {
  uint64_t c = cursor_.load(std::memory_order_acquire);
  for (;;) {
    const Job& job = jobs_[(c >> 32) & 1];
    const size_t begin = size_t(c & 0xffffffffu);
    const size_t n = job.n.load(std::memory_order_relaxed), chunk = job.chunk.load(std::memory_order_relaxed);
    if (begin >= n) return;
    // The claim succeeds only while the cursor still belongs to this job (n and chunk above are
    // then its own: the next job's parameters go into the other slot).
    if (!cursor_.compare_exchange_weak(c, c + chunk, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    const size_t end = std::min(n, begin + chunk);
    job.task.load(std::memory_order_relaxed)(job.ctx.load(std::memory_order_relaxed), begin, end, thread);
    done_.fetch_add(end - begin, std::memory_order_release);
    c = cursor_.load(std::memory_order_acquire);
  }
}

void ThreadPool::worker_loop(int thread) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t g = generation_.load(std::memory_order_acquire);
    for (int i = 0; g == seen && i < kSpinRounds; ++i) {
      cpu_relax();
      g = generation_.load(std::memory_order_acquire);
    }
    if (g == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    if (stop_.load(std::memory_order_relaxed)) return;  // ordered by the acquire above
    work(thread);
  }
}

}  // namespace vkssm
