/* Uses the installed C API (<vkssm/vkssm.h>): steps a few tokens of a token model on the cpu and
 * the vulkan backend, checks that both give the same logits and that a bad token fails with a
 * message. Exit code 0 on success. */
#include <vkssm/vkssm.h>

#include <stdio.h>
#include <stdlib.h>

static float* run(const char* path, int backend, int64_t* vocab) {
  vkssm_load_options opt;
  vkssm_load_options_default(&opt);
  opt.backend = backend;
  opt.max_streams = 1;
  vkssm_model* model = NULL;
  if (vkssm_model_load(path, &opt, &model) != VKSSM_OK) {
    fprintf(stderr, "load failed: %s\n", vkssm_last_error());
    exit(1);
  }
  *vocab = vkssm_model_vocab_size(model);
  float* logits = malloc(sizeof(float) * (size_t)*vocab);
  const int32_t tokens[] = {82, 79, 77, 69, 79, 58};
  const int32_t slot = 0;
  for (int i = 0; i < 6; ++i) {
    if (vkssm_model_step(model, &tokens[i], &slot, 1, logits) != VKSSM_OK) {
      fprintf(stderr, "step failed: %s\n", vkssm_last_error());
      exit(1);
    }
  }
  const int32_t bad = (int32_t)*vocab;
  if (vkssm_model_step(model, &bad, &slot, 1, NULL) != VKSSM_ERROR) {
    fprintf(stderr, "a bad token did not fail\n");
    exit(1);
  }
  printf("%s (%s): bad token refused as expected: %s\n", vkssm_model_architecture(model),
         backend ? "cpu" : "vulkan", vkssm_last_error());
  vkssm_model_free(model);
  return logits;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
    return 2;
  }
  int64_t vocab = 0;
  float* cpu = run(argv[1], 1, &vocab);
  float* gpu = run(argv[1], 0, &vocab);
  double worst = 0;
  for (int64_t i = 0; i < vocab; ++i) {
    double d = (double)cpu[i] - gpu[i];
    if (d < 0) d = -d;
    if (d > worst) worst = d;
  }
  printf("logits[0..3] cpu %.5f %.5f %.5f, vulkan %.5f %.5f %.5f; max |cpu - vulkan| = %.2e\n", cpu[0], cpu[1], cpu[2],
         gpu[0], gpu[1], gpu[2], worst);
  free(cpu);
  free(gpu);
  if (!(worst < 1e-3)) {
    fprintf(stderr, "cpu and vulkan logits differ by %g\n", worst);
    return 1;
  }
  printf("C consumer: OK\n");
  return 0;
}
