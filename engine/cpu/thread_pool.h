#pragma once
// The cpu backend's workers: a fixed set of threads created once (at model load), which
// split each parallel_for between themselves and the calling thread. A step calls parallel_for a
// few times per layer, so dispatching one costs no allocation and no thread creation: the job is
// a function pointer + context, and chunks are claimed from one atomic cursor. A job is done when
// all its items are, not when every worker has looked at it: on a machine shared with other
// processes a descheduled worker simply claims nothing, and the caller does its share instead of
// waiting for it to be scheduled. Idle workers spin briefly before sleeping, because the next job
// usually comes within microseconds.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>
#include <vector>

namespace vkssm {

class ThreadPool {
 public:
  // `threads` in all, the caller included (1 = everything on the caller). 0 = $VKSSM_THREADS, or
  // else std::thread::hardware_concurrency(). Throws vkssm::Error on a bad $VKSSM_THREADS.
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(workers_.size()) + 1; }

  // A grain (multiple of `align`) that gives every chunk at least ~kMinChunkWork operations of
  // `work_per_item` each: a job smaller than that runs on the caller, where waking the workers
  // would cost more than it saves.
  static size_t grain_for(size_t work_per_item, size_t align) {
    const size_t items = (kMinChunkWork + work_per_item - 1) / std::max<size_t>(work_per_item, 1);
    return std::max(align, (items + align - 1) / align * align);
  }
  static constexpr size_t kMinChunkWork = 32768;

  // Calls f(begin, end, thread) over [0, n) in chunks of a multiple of `grain` items (the last one
  // shorter), on every thread (thread in [0, size())); returns when all chunks are done.
  template <class F>
  void parallel_for(size_t n, size_t grain, F&& f) {
    using Fn = std::remove_reference_t<F>;
    run(n, grain, [](void* ctx, size_t b, size_t e, int t) { (*static_cast<Fn*>(ctx))(b, e, t); }, &f);
  }

 private:
  using Task = void (*)(void* ctx, size_t begin, size_t end, int thread);
  void run(size_t n, size_t grain, Task task, void* ctx);
  void work(int thread);  // claims chunks of the current job until none are left
  void worker_loop(int thread);

  // A job's parameters. Two slots, by the job number's parity: a worker holding a stale cursor
  // may still read the previous job's slot while the next one is written into the other; its
  // claim then fails, because the cursor has moved on.
  struct Job {
    std::atomic<Task> task{nullptr};
    std::atomic<void*> ctx{nullptr};
    std::atomic<size_t> n{0}, chunk{1};
  };
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};  // bumped once per job (and to stop), for sleepers
  std::atomic<uint64_t> cursor_{0};      // job number << 32 | first item not claimed yet
  std::atomic<size_t> done_{0};          // items of the current job finished
  std::atomic<bool> stop_{false};
  Job jobs_[2];
  uint32_t job_ = 0;                     // the current job's number (caller side)
};

// Threads for a pool: `requested` if > 0, else $VKSSM_THREADS if set, else the core count.
int cpu_thread_count(int requested);

}  // namespace vkssm
