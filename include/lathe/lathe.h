/* Lathe's C API: run a compiled artifact (lathe-compile's .lathe file) from
 * any language that can call C. Open a model, tokenize, and generate into a
 * callback; every function returns a status, and a failed call leaves a
 * one-line message in lathe_last_error(). No C++ exception crosses this
 * interface.
 *
 *   lathe_model *model;
 *   if (lathe_model_open("story.lathe", NULL, &model) != LATHE_OK) {
 *     fprintf(stderr, "%s\n", lathe_last_error());
 *     return 1;
 *   }
 *   lathe_session *session;
 *   lathe_session_create(model, &session);
 *   int32_t ids[256];
 *   size_t count;
 *   lathe_tokenize(model, "Once upon a time", 1, ids, 256, &count);
 *   lathe_generate_options options;
 *   lathe_generate_options_init(&options);
 *   lathe_generate(session, ids, count, &options, print_token, NULL);
 *   lathe_session_destroy(session);
 *   lathe_model_close(model);
 *
 * A model may serve several sessions, one thread per session at a time. */
#ifndef LATHE_LATHE_H
#define LATHE_LATHE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LATHE_C_API_VERSION 1

typedef enum lathe_status {
  LATHE_OK = 0,
  LATHE_ERROR_INVALID_ARGUMENT = 1, /* a null pointer, an id outside the vocabulary, ... */
  LATHE_ERROR_IO = 2,               /* the artifact cannot be read or is not valid */
  LATHE_ERROR_UNSUPPORTED = 3,      /* e.g. no tokenizer in the artifact, no GPU */
  LATHE_ERROR_CAPACITY = 4,         /* an output buffer too small; *count says how much */
  LATHE_ERROR_RUNTIME = 5           /* a step failed (memory, device) */
} lathe_status;

typedef struct lathe_model lathe_model;
typedef struct lathe_session lathe_session;

/* The message of the calling thread's last failed call ("" if none). */
const char *lathe_last_error(void);

/* Loads `path` for `target` ("cpu", "cuda", or NULL: the first the artifact
 * was compiled for). */
lathe_status lathe_model_open(const char *path, const char *target, lathe_model **model);
/* The same for an artifact compiled with --external-weights whose parameter
 * file is `parameters` (NULL: the artifact's name with the extension
 * .params, beside it, where lathe_model_open looks too). */
lathe_status lathe_model_open_with_parameters(const char *path, const char *parameters,
                                              const char *target, lathe_model **model);
void lathe_model_close(lathe_model *model);

/* The model's vocabulary size and context length. */
int64_t lathe_model_vocab(const lathe_model *model);
int64_t lathe_model_context(const lathe_model *model);

/* The ids of `text` (UTF-8) in ids[0..*count); with add_special, BOS/EOS as
 * the tokenizer configures them. If capacity is too small, *count is the
 * number needed and the status LATHE_ERROR_CAPACITY. */
lathe_status lathe_tokenize(const lathe_model *model, const char *text, int add_special,
                            int32_t *ids, size_t capacity, size_t *count);
/* The text of ids, NUL-terminated in text[0..capacity); *length is its
 * length without the NUL (the capacity needed is *length + 1). */
lathe_status lathe_detokenize(const lathe_model *model, const int32_t *ids, size_t count,
                              char *text, size_t capacity, size_t *length);

/* A sequence with its own KV cache over the model. It holds what it uses of
 * the model: closing the model first leaves it working. */
lathe_status lathe_session_create(lathe_model *model, lathe_session **session);
void lathe_session_destroy(lathe_session *session);
/* Forgets the sequence: the next lathe_generate starts at position 0. */
void lathe_session_reset(lathe_session *session);

typedef struct lathe_generate_options {
  int64_t max_new_tokens;  /* default 256; generation also ends at the context */
  float temperature;       /* 0 (default): greedy */
  float top_p;             /* (0, 1], default 1 */
  int32_t top_k;           /* 0 (default): off */
  uint64_t seed;           /* default 0 */
  int stop_at_end_of_text; /* default 1: end at the tokenizer's EOS/BOS */
} lathe_generate_options;

void lathe_generate_options_init(lathe_generate_options *options);

/* Receives each new token and the text it completes (UTF-8, possibly empty
 * while a character is unfinished; NULL without a tokenizer). Return 0 to
 * go on, anything else to stop after this token. */
typedef int (*lathe_token_callback)(int32_t token, const char *text, void *user);

/* Runs the prompt from position 0 (the session is reset first), then
 * decodes, calling `callback` (may be NULL) per token. *generated (may be
 * NULL) receives the number of tokens produced. Called for the same session
 * from its own callback: LATHE_ERROR_INVALID_ARGUMENT. */
lathe_status lathe_generate(lathe_session *session, const int32_t *prompt, size_t count,
                            const lathe_generate_options *options,
                            lathe_token_callback callback, void *user, int64_t *generated);

#ifdef __cplusplus
}
#endif

#endif
