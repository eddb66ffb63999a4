// Embedding the Lathe runtime in an application: load an artifact, tokenize
// a prompt, stream a greedy continuation. Only the runtime library is linked
// (no MLIR). Usage: generate MODEL.lathe "Once upon a time"
#include "runtime/artifact/Artifact.h"
#include "runtime/engine/Generation.h"
#include "runtime/engine/Session.h"
#include "runtime/tokenizer/Tokenizer.h"

#include <cstdio>

int main(int argc, char **argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s MODEL.lathe PROMPT\n", argv[0]);
    return 1;
  }
  auto artifact = lathe::artifact::Artifact::load(argv[1]);
  if (!artifact) {
    std::fprintf(stderr, "%s\n", artifact.error().message().c_str());
    return 1;
  }
  auto tokenizer = lathe::Tokenizer::create((*artifact)->vocabulary());
  auto session = lathe::Session::create(*artifact);
  if (!tokenizer || !session) {
    std::fprintf(stderr, "%s\n", tokenizer ? session.error().message().c_str()
                                           : tokenizer.error().message().c_str());
    return 1;
  }
  std::vector<int32_t> prompt = tokenizer->encode(argv[2], /*addBos=*/true);
  lathe::GenerationOptions options;
  options.maxNewTokens = 64;
  int32_t prev = prompt.back();
  std::fputs(argv[2], stdout);
  auto stats = lathe::generate(*session, prompt, options, [&](int32_t token) {
    std::fputs(tokenizer->decodePiece(prev, token).c_str(), stdout);
    std::fflush(stdout);
    prev = token;
  });
  std::puts("");
  if (!stats) {
    std::fprintf(stderr, "%s\n", stats.error().message().c_str());
    return 1;
  }
  return 0;
}
