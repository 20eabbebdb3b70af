// Uses the installed C++ API (<vkssm/vkssm.hpp>, <vkssm/stream_pool.h>): steps a few tokens of a
// token model on the cpu and the vulkan backend, checks that both give the same logits, and that
// an engine error arrives as a vkssm::Error. Prints the first logits. Exit code 0 on success.
#include <vkssm/listener.h>
#include <vkssm/stream_pool.h>
#include <vkssm/vkssm.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

static std::vector<float> run(const char* path, vkssm::BackendKind backend) {
  vkssm::LoadOptions opt;
  opt.backend = backend;
  opt.max_streams = 2;
  auto model = vkssm::load_model(path, opt);
  const auto& info = model->info();
  std::printf("%s: %s, %lld layers, vocab %lld, on %s\n", info.backend.c_str(), info.architecture.c_str(),
              (long long)info.n_layer, (long long)info.vocab_size, info.device_name.c_str());
  std::vector<float> logits(info.vocab_size);
  const int32_t slot = 0;
  for (int32_t tok : {82, 79, 77, 69, 79, 58}) model->step(&tok, &slot, 1, logits.data());

  vkssm::StreamPool pool(*model);  // the stream pool header and its symbols work from outside too
  vkssm::StreamHandle s = pool.open();
  pool.close(s);

  bool caught = false;
  try {
    const int32_t bad_slot = 99, tok = 1;
    model->step(&tok, &bad_slot, 1, nullptr);
  } catch (const vkssm::Error& e) {
    caught = true;
    std::printf("  vkssm::Error as expected: %s\n", e.what());
  }
  if (!caught) {
    std::fprintf(stderr, "a bad slot did not throw vkssm::Error\n");
    std::exit(1);
  }
  return logits;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
    return 2;
  }
  try {
    std::vector<float> cpu = run(argv[1], vkssm::BackendKind::Reference);
    std::vector<float> gpu = run(argv[1], vkssm::BackendKind::Vulkan);
    double worst = 0;
    for (size_t i = 0; i < cpu.size(); ++i) worst = std::fmax(worst, std::fabs(double(cpu[i]) - gpu[i]));
    std::printf("logits[0..3] cpu %.5f %.5f %.5f, vulkan %.5f %.5f %.5f; max |cpu - vulkan| = %.2e\n", cpu[0], cpu[1],
                cpu[2], gpu[0], gpu[1], gpu[2], worst);
    if (!(worst < 1e-3)) {
      std::fprintf(stderr, "cpu and vulkan logits differ by %g\n", worst);
      return 1;
    }
    std::printf("C++ consumer: OK\n");
    return 0;
  } catch (const vkssm::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
