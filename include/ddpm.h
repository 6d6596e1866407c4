/* ddpm.h: the C interface of libddpm, for programs that generate images without Python and
 * without the `ddpm` command line. A model is loaded once and generates as many images as asked,
 * call after call; every result equals `ddpm sample` with the same settings, byte for byte.
 *
 *   ddpm_model* model = ddpm_model_load("models/fmnist", NULL);
 *   if (!model) { fprintf(stderr, "%s\n", ddpm_last_error()); return 1; }
 *   ddpm_generate_params p;
 *   ddpm_generate_params_init(&p);
 *   p.n = 16; p.seed = 1; p.steps = 100; p.spacing = "trailing";
 *   ddpm_model_info info;
 *   ddpm_model_get_info(model, &info);
 *   unsigned char* pixels = malloc((size_t)p.n * info.height * info.width * info.channels);
 *   if (ddpm_generate(model, &p, pixels) != DDPM_OK) fprintf(stderr, "%s\n", ddpm_last_error());
 *   ddpm_model_free(model);
 *
 * Build against an installed libddpm with `pkg-config --cflags --libs ddpm`, or in CMake with
 * `find_package(ddpm CONFIG REQUIRED)` and `target_link_libraries(app PRIVATE ddpm::ddpm)`.
 * examples/generate.c is a whole program.
 *
 * Errors: a call that fails returns NULL or a status other than DDPM_OK and leaves a message in
 * ddpm_last_error() (per thread) that says what was wrong.
 *
 * Threads: any thread may call the library, but calls run one at a time (each takes a library-wide
 * lock for its duration, and itself uses every core through OpenMP); a call from another thread
 * waits. A progress callback may call back into the library from its own thread. */
#ifndef DDPM_H
#define DDPM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Changes when a struct below gains a field or a function changes meaning. */
#define DDPM_API_VERSION 1

typedef enum ddpm_status {
  DDPM_OK = 0,
  DDPM_ERROR = 1,     /* see ddpm_last_error() */
  DDPM_CANCELLED = 2  /* the progress callback asked to stop */
} ddpm_status;

/* The library's version, "MAJOR.MINOR.PATCH". */
const char* ddpm_version(void);

/* The message of this thread's last failed call ("" when none failed). Valid until the next call
 * into libddpm from this thread. */
const char* ddpm_last_error(void);

/* ---- messages ---- */

typedef enum ddpm_log_level { DDPM_LOG_NOTE = 0, DDPM_LOG_WARNING = 1 } ddpm_log_level;

/* Receives the library's notes and warnings (e.g. a config key a model directory leaves out, an
 * image resized to the model), one line each, without a newline. */
typedef void (*ddpm_log_callback)(ddpm_log_level level, const char* message, void* user_data);

/* Routes the library's messages to callback (process-wide); NULL restores the default, stderr. */
void ddpm_set_log_callback(ddpm_log_callback callback, void* user_data);

/* ---- models ---- */

typedef struct ddpm_model ddpm_model;

typedef struct ddpm_load_params {
  int batch;             /* images per U-Net call (memory is planned for it once); default 16 */
  const char* precision; /* "fp32" (default) or "bf16" (bf16 operands, fp32 accumulation) */
  const char* device;    /* "cpu" (default) or "cuda" (a build with the CUDA backend and a GPU) */
  double guidance;       /* classifier-free guidance scale W for a class-conditional model; default 1
                            (the conditional model alone); with W != 1 each call runs 2 x batch images */
  int threads;           /* CPU threads for this model's calls (OpenMP); 0 (default): the calling
                            thread's OpenMP setting (OMP_NUM_THREADS, else every core) */
} ddpm_load_params;

/* Fills params with the defaults above. */
void ddpm_load_params_init(ddpm_load_params* params);

/* Loads a diffusers model directory (MODEL/unet/config.json, MODEL/unet/diffusion_pytorch_model.
 * safetensors, MODEL/scheduler/scheduler_config.json), as written by `ddpm train` or diffusers.
 * params may be NULL (the defaults). Returns NULL on failure (missing or corrupt files, a bad
 * parameter). Warnings about what the directory leaves out go to the log (ddpm_set_log_callback),
 * once per directory. */
ddpm_model* ddpm_model_load(const char* model_dir, const ddpm_load_params* params);

/* Frees the model; NULL is allowed. */
void ddpm_model_free(ddpm_model* model);

typedef struct ddpm_model_info {
  int height, width, channels; /* of one generated image */
  int num_classes;             /* class-conditional: the classes (labels 0..num_classes-1); else 0 */
  int condition_channels;      /* image-conditioned models: the condition image's channels (see
                                  ddpm_translate, which alone runs them); else 0 */
  int num_train_timesteps;     /* T */
  int batch;                   /* as loaded */
  long long parameters;        /* of the U-Net */
} ddpm_model_info;

ddpm_status ddpm_model_get_info(const ddpm_model* model, ddpm_model_info* info);

/* ---- generation ---- */

/* Called after every U-Net evaluation: done of total (total = batches x steps). Return 0 to go
 * on, anything else to stop: ddpm_generate then returns DDPM_CANCELLED. */
typedef int (*ddpm_progress_callback)(long long done, long long total, void* user_data);

typedef struct ddpm_generate_params {
  int n;                      /* images; default 1 */
  unsigned long long seed;    /* of x_T and every step's noise; default 0 */
  const char* sampler;        /* "ddpm" (default), "ddim" or "dpm-solver++" */
  int steps;                  /* U-Net evaluations per image; 0 (default): T for ddpm, 50 otherwise */
  const char* spacing;        /* "leading", "trailing", "linspace" or "quadratic"; NULL (default):
                                 the scheduler config's */
  double eta;                 /* ddim only: 0 (default) deterministic, 1 as DDPM */
  int no_clip;                /* nonzero: do not clip the predicted x0 to [-1, 1] */
  int clipped_eps;            /* ddim only: re-derive eps from the clipped x0 */
  const int* classes;         /* class-conditional models: n labels, each 0..num_classes-1; NULL
                                 (default): unconditional draws (the null class) */
  const float* init_noise;    /* ddpm_generate(_float): x_T itself, n x height x width x channels
                                 floats (the layout of the images); NULL (default): drawn from the
                                 seed, which then gives only the steps' noise */
  double strength;            /* ddpm_img2img: how far the image is noised, in (0, 1]: 1 ignores it,
                                 small values keep it; default 0.6 */
  int jump_length;            /* ddpm_inpaint: RePaint's resampling jump j; default 10 */
  int jump_n_sample;          /* ddpm_inpaint: times each jump is taken (r; 1: none); default 10 */
  ddpm_progress_callback progress; /* NULL (default): none */
  void* user_data;                 /* passed to progress */
} ddpm_generate_params;

/* Fills params with the defaults above. */
void ddpm_generate_params_init(ddpm_generate_params* params);

/* Generates params->n images into pixels: n x height x width x channels bytes, each image's rows
 * top to bottom, each pixel's channels interleaved (grey, or R G B), values 0..255. The same
 * model, settings and seed give the same bytes; with the model's batch equal to `ddpm sample
 * --batch`, they are `ddpm sample`'s images. */
ddpm_status ddpm_generate(ddpm_model* model, const ddpm_generate_params* params, unsigned char* pixels);

/* As ddpm_generate, but the model's output itself: floats in [-1, 1] in the same layout (clipped
 * only when the sampler clips x0). */
ddpm_status ddpm_generate_float(ddpm_model* model, const ddpm_generate_params* params, float* images);

/* ---- editing an image (no retraining) ---- */

/* Image-to-image (SDEdit, `ddpm img2img`): params->n variations of `image` (height x width x
 * channels bytes, the layout above, at the model's size), each noised to params->strength of the
 * chain and denoised by the sampler (steps counts the whole chain; strength cuts it). */
ddpm_status ddpm_img2img(ddpm_model* model, const ddpm_generate_params* params, const unsigned char* image,
                         unsigned char* pixels);

/* Inpainting (RePaint, `ddpm inpaint`): params->n versions of `image` with the region that `mask`
 * (height x width bytes) marks regenerated: 255 (white) regenerate, 0 keep, values between blend.
 * Respaced DDPM over params->steps (0: RePaint's 250) with resampling jumps; the kept pixels of
 * every result are the image's exactly. */
ddpm_status ddpm_inpaint(ddpm_model* model, const ddpm_generate_params* params, const unsigned char* image,
                         const unsigned char* mask, unsigned char* pixels);

/* ---- image-conditioned models (info.condition_channels > 0) ---- */

/* Image-to-image translation (SR3/Palette, `ddpm translate`): one output per condition image.
 * conditions: params->n images of height x width x condition_channels bytes, each what the model
 * was trained to take (e.g. a low-resolution image enlarged to the model's size, or the image to
 * segment). The sampler settings are ddpm_generate's. */
ddpm_status ddpm_translate(ddpm_model* model, const ddpm_generate_params* params, const unsigned char* conditions,
                           unsigned char* pixels);

/* Writes n images (the layout of ddpm_generate) as one PNG grid with `columns` columns (0: as
 * square as possible) and 2-pixel gaps, as `ddpm sample --out` does. The file is written to a
 * temporary name and renamed, so a crash never leaves half a PNG. */
ddpm_status ddpm_write_png_grid(const char* path, const unsigned char* pixels, int n, int height, int width,
                                int channels, int columns);

#ifdef __cplusplus
}
#endif

#endif /* DDPM_H */
