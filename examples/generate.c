/* A whole program on libddpm's C interface: load a model once, generate images, write a PNG grid.
 *
 *   generate MODEL_DIR OUT.png [N [SEED [STEPS [BATCH]]]]
 *
 * It samples as `ddpm sample --model MODEL_DIR --n N --seed SEED --steps STEPS --spacing trailing
 * --batch BATCH --out OUT.png` does (DDPM, respaced to STEPS with trailing spacing; defaults: 16
 * images, seed 0, 100 steps, batch N), and the PNG is byte for byte the same but for the text
 * chunks in which the CLI records what made it. Build it against an installed libddpm with
 *
 *   cc generate.c $(pkg-config --cflags --libs ddpm) -o generate
 */
#include <ddpm.h>

#include <stdio.h>
#include <stdlib.h>

/* A one-line progress bar on stderr; returning nonzero would cancel the generation. */
static int show_progress(long long done, long long total, void* user_data) {
  const char* what = (const char*)user_data;
  const int width = 40, filled = total > 0 ? (int)(width * done / total) : width;
  fprintf(stderr, "\r%s [%.*s%*s] %lld/%lld", what, filled, "########################################",
          width - filled, "", done, total);
  if (done == total) fputc('\n', stderr);
  return 0;
}

static long parse_count(const char* text, const char* name) {
  char* end = NULL;
  const long value = strtol(text, &end, 10);
  if (*text == '\0' || *end != '\0' || value < 0) {
    fprintf(stderr, "generate: %s must be a non-negative integer, got \"%s\"\n", name, text);
    exit(2);
  }
  return value;
}

int main(int argc, char** argv) {
  if (argc < 3 || argc > 7) {
    fprintf(stderr, "usage: %s MODEL_DIR OUT.png [N [SEED [STEPS [BATCH]]]]\n(libddpm %s)\n", argv[0],
            ddpm_version());
    return 2;
  }
  const int n = argc > 3 ? (int)parse_count(argv[3], "N") : 16;
  const unsigned long long seed = argc > 4 ? (unsigned long long)parse_count(argv[4], "SEED") : 0;
  const int steps = argc > 5 ? (int)parse_count(argv[5], "STEPS") : 100;
  const int batch = argc > 6 ? (int)parse_count(argv[6], "BATCH") : n;

  ddpm_load_params load;
  ddpm_load_params_init(&load);
  load.batch = batch;
  ddpm_model* model = ddpm_model_load(argv[1], &load);
  if (model == NULL) {
    fprintf(stderr, "%s\n", ddpm_last_error());
    return 1;
  }
  ddpm_model_info info;
  ddpm_model_get_info(model, &info);
  fprintf(stderr, "%s: %dx%dx%d images, %lld parameters, T = %d\n", argv[1], info.height, info.width,
          info.channels, info.parameters, info.num_train_timesteps);

  ddpm_generate_params params;
  ddpm_generate_params_init(&params);
  params.n = n;
  params.seed = seed;
  params.steps = steps;
  params.spacing = "trailing";
  params.progress = show_progress;
  params.user_data = (void*)"sample";
  unsigned char* pixels = malloc((size_t)n * info.height * info.width * info.channels);
  int status = pixels == NULL ? DDPM_ERROR : ddpm_generate(model, &params, pixels);
  if (status == DDPM_OK) status = ddpm_write_png_grid(argv[2], pixels, n, info.height, info.width, info.channels, 0);
  if (status == DDPM_OK)
    fprintf(stderr, "wrote %s\n", argv[2]);
  else
    fprintf(stderr, "%s\n", pixels == NULL ? "generate: out of memory" : ddpm_last_error());
  free(pixels);
  ddpm_model_free(model);
  return status == DDPM_OK ? 0 : 1;
}
