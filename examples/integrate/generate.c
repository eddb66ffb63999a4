/* integrate-generate: the runtime embedded through its C API
 * ("lathe/lathe.h", Lathe::Runtime), as a C program would. Greedy
 * continuation of a prompt, streamed through a callback:
 *
 *   integrate-generate model.lathe "Once upon a time" [N]   text in, text out
 *   integrate-generate model.lathe --ids 1,2,3 [N]          ids in, ids out
 *
 * N new tokens at most (default 256). An artifact compiled without a
 * tokenizer takes --ids only. Errors print lathe_last_error() and exit 1. */
#include "lathe/lathe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_PROMPT = 1024 };

static int print_text(int32_t token, const char *text, void *user) {
  (void)token;
  (void)user;
  fputs(text ? text : "", stdout);
  fflush(stdout);
  return 0; /* nonzero would stop generation after this token */
}

static int print_id(int32_t token, const char *text, void *user) {
  int *printed = (int *)user;
  (void)text;
  printf(*printed ? " %d" : "%d", (int)token);
  ++*printed;
  return 0;
}

int main(int argc, char **argv) {
  int ids_mode = argc >= 3 && strcmp(argv[2], "--ids") == 0;
  int prompt_arg = ids_mode ? 3 : 2;
  if (argc <= prompt_arg || argc > prompt_arg + 2) {
    fprintf(stderr, "usage: integrate-generate MODEL.lathe (TEXT | --ids 1,2,3) [N]\n");
    return 2;
  }
  lathe_generate_options options;
  lathe_generate_options_init(&options); /* greedy, stop at the end of text */
  if (argc == prompt_arg + 2)
    options.max_new_tokens = atoi(argv[prompt_arg + 1]);

  lathe_model *model = NULL;
  lathe_session *session = NULL;
  int32_t prompt[MAX_PROMPT];
  size_t count = 0;
  int printed = 0;
  lathe_status status = lathe_model_open(argv[1], NULL, &model);
  if (status == LATHE_OK)
    status = lathe_session_create(model, &session);
  if (status == LATHE_OK && ids_mode) {
    char *list = argv[prompt_arg];
    for (char *id = strtok(list, ","); id && count < MAX_PROMPT; id = strtok(NULL, ","))
      prompt[count++] = (int32_t)atoi(id);
    status = lathe_generate(session, prompt, count, &options, print_id, &printed, NULL);
  } else if (status == LATHE_OK) {
    status = lathe_tokenize(model, argv[prompt_arg], 1, prompt, MAX_PROMPT, &count);
    if (status == LATHE_OK)
      status = lathe_generate(session, prompt, count, &options, print_text, NULL, NULL);
  }
  if (status == LATHE_OK)
    printf("\n");
  else
    fprintf(stderr, "integrate-generate: %s\n", lathe_last_error());
  lathe_session_destroy(session);
  lathe_model_close(model);
  return status == LATHE_OK ? 0 : 1;
}
