/* A C program (built as C, so the header is checked as C) that drives
 * include/lathe/lathe.h for test/lit/tools/c-api.test:
 *
 *   lathe-capi-smoke ART ids 1,2,3 N   greedy from ids: the generated ids
 *   lathe-capi-smoke ART text "..." N  tokenize, greedy, ids and streamed text
 *   lathe-capi-smoke ART stop-after K  ids 1: the callback stops after K tokens
 *   lathe-capi-smoke ART capacity      tokenize "Once upon a time" into 1 slot
 *   lathe-capi-smoke ART nulls         null arguments: each call's status
 *   lathe-capi-smoke ART closed IDS N  as ids, with the model closed first
 *   lathe-capi-smoke ART reenter       a callback that calls lathe_generate
 *                                      on its own session: that call's status
 *
 * Every failure prints "error <status>: <lathe_last_error()>" and exits 1. */
#include "include/lathe/lathe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check(lathe_status status) {
  if (status != LATHE_OK) {
    printf("error %d: %s\n", (int)status, lathe_last_error());
    exit(1);
  }
  return 0;
}

struct collected {
  int32_t ids[4096];
  size_t count;
  char text[65536];
  size_t length;
  int stop_after;
};

static int collect(int32_t token, const char *text, void *user) {
  struct collected *c = (struct collected *)user;
  if (c->count < 4096)
    c->ids[c->count++] = token;
  if (text) {
    size_t n = strlen(text);
    if (c->length + n < sizeof c->text) {
      memcpy(c->text + c->length, text, n + 1);
      c->length += n;
    }
  }
  return c->stop_after > 0 && (int)c->count >= c->stop_after;
}

/* The session lathe_generate runs on, for reenter's callback. */
static lathe_session *reentered;
static int reenter(int32_t token, const char *text, void *user) {
  (void)token;
  (void)text;
  lathe_generate_options options;
  lathe_generate_options_init(&options);
  int32_t prompt = 1;
  lathe_status s = lathe_generate(reentered, &prompt, 1, &options, NULL, NULL, NULL);
  printf("inner %d: %s\n", (int)s, lathe_last_error());
  (void)user;
  return 1;
}

static void print_ids(const struct collected *c) {
  for (size_t i = 0; i < c->count; ++i)
    printf(i ? " %d" : "%d", (int)c->ids[i]);
  printf("\n");
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: lathe-capi-smoke ART (ids IDS N | text TEXT N | stop-after K | capacity)\n");
    return 2;
  }
  lathe_model *model = NULL;
  /* A parameter file named apart from the artifact (--external-weights). */
  const char *parameters = getenv("LATHE_CAPI_PARAMS");
  check(lathe_model_open_with_parameters(argv[1], parameters, NULL, &model));
  lathe_session *session = NULL;
  check(lathe_session_create(model, &session));
  lathe_generate_options options;
  lathe_generate_options_init(&options);
  static struct collected c;
  int32_t prompt[1024];
  size_t count = 0;
  int64_t generated = 0;
  if ((strcmp(argv[2], "ids") == 0 || strcmp(argv[2], "closed") == 0) && argc == 5) {
    if (strcmp(argv[2], "closed") == 0) {
      lathe_model_close(model); /* the session keeps what it needs */
      model = NULL;
    }
    for (char *p = strtok(argv[3], ","); p && count < 1024; p = strtok(NULL, ","))
      prompt[count++] = (int32_t)atoi(p);
    options.max_new_tokens = atoi(argv[4]);
    options.stop_at_end_of_text = 0;
    check(lathe_generate(session, prompt, count, &options, collect, &c, &generated));
    print_ids(&c);
  } else if (strcmp(argv[2], "text") == 0 && argc == 5) {
    check(lathe_tokenize(model, argv[3], 1, prompt, 1024, &count));
    options.max_new_tokens = atoi(argv[4]);
    check(lathe_generate(session, prompt, count, &options, collect, &c, &generated));
    print_ids(&c);
    printf("%s\n", c.text);
    char decoded[65536];
    size_t length = 0;
    check(lathe_detokenize(model, c.ids, c.count, decoded, sizeof decoded, &length));
    printf("decoded %zu bytes\n", length);
  } else if (strcmp(argv[2], "stop-after") == 0 && argc == 4) {
    prompt[0] = 1;
    c.stop_after = atoi(argv[3]);
    options.max_new_tokens = 50;
    options.stop_at_end_of_text = 0;
    check(lathe_generate(session, prompt, 1, &options, collect, &c, &generated));
    printf("generated %lld\n", (long long)generated);
  } else if (strcmp(argv[2], "reenter") == 0) {
    prompt[0] = 1;
    reentered = session;
    options.max_new_tokens = 3;
    check(lathe_generate(session, prompt, 1, &options, reenter, NULL, &generated));
    printf("outer generated %lld\n", (long long)generated);
  } else if (strcmp(argv[2], "capacity") == 0) {
    lathe_status s = lathe_tokenize(model, "Once upon a time", 1, prompt, 1, &count);
    printf("status %d, %zu ids needed: %s\n", (int)s, count, lathe_last_error());
  } else if (strcmp(argv[2], "nulls") == 0) {
    lathe_model *none = NULL;
    printf("open %d\n", (int)lathe_model_open(NULL, NULL, &none));
    printf("tokenize %d\n", (int)lathe_tokenize(model, NULL, 1, prompt, 1024, &count));
    printf("generate %d: %s\n", (int)lathe_generate(session, NULL, 3, &options, NULL, NULL, NULL),
           lathe_last_error());
    options.top_p = 2.0f;
    prompt[0] = 1;
    printf("options %d: %s\n", (int)lathe_generate(session, prompt, 1, &options, NULL, NULL, NULL),
           lathe_last_error());
  } else {
    fprintf(stderr, "lathe-capi-smoke: unknown mode\n");
    return 2;
  }
  lathe_session_destroy(session);
  lathe_model_close(model);
  return 0;
}
