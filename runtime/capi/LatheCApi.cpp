// The C API (include/lathe/lathe.h) over the runtime: artifact loading, the
// backend's executable, the artifact's tokenizer, a Session per lathe_session
// and generate(). Every entry point catches everything: no exception
// crosses into C; a failure sets the thread's last error and returns a
// status.
#include "include/lathe/lathe.h"

#include "runtime/artifact/Artifact.h"
#include "runtime/backend/Executable.h"
#include "runtime/engine/Generation.h"
#include "runtime/engine/Session.h"
#include "runtime/tokenizer/OpenTokenizer.h"

#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <string>

struct lathe_model {
  std::shared_ptr<const lathe::artifact::Artifact> artifact;
  std::shared_ptr<lathe::backend::Executable> executable;
  std::shared_ptr<const lathe::TextTokenizer> tokenizer; // null: none in the artifact
};

/// A session holds what it uses of its model, so that lathe_model_close
/// before lathe_session_destroy leaves it working (it read the freed model).
struct lathe_session {
  std::shared_ptr<const lathe::artifact::Artifact> artifact;
  std::shared_ptr<const lathe::TextTokenizer> tokenizer;
  lathe::Session session; // holds the executable
  bool generating = false;  // inside lathe_generate (its callback may call back in)
};

namespace {

thread_local std::string lastError;

lathe_status fail(lathe_status status, std::string message) {
  lastError = std::move(message);
  return status;
}

/// Runs `body`, turning any escaping exception into a status.
template <class F> lathe_status guarded(F &&body) {
  try {
    return body();
  } catch (const std::bad_alloc &) {
    return fail(LATHE_ERROR_RUNTIME, "out of memory");
  } catch (const std::exception &e) {
    return fail(LATHE_ERROR_RUNTIME, e.what());
  } catch (...) {
    return fail(LATHE_ERROR_RUNTIME, "unknown error");
  }
}

} // namespace

extern "C" {

const char *lathe_last_error(void) { return lastError.c_str(); }

lathe_status lathe_model_open(const char *path, const char *target, lathe_model **model) {
  return lathe_model_open_with_parameters(path, nullptr, target, model);
}

lathe_status lathe_model_open_with_parameters(const char *path, const char *parameters,
                                              const char *target, lathe_model **model) {
  return guarded([&] {
    if (!path || !model)
      return fail(LATHE_ERROR_INVALID_ARGUMENT, "lathe_model_open: null path or model");
    *model = nullptr;
    lathe::artifact::LoadOptions load;
    if (parameters)
      load.parameters = parameters;
    auto artifact = lathe::artifact::Artifact::load(path, load);
    if (!artifact)
      return fail(LATHE_ERROR_IO, artifact.error().message());
    lathe::SessionOptions options;
    options.target = target                             ? std::string(target)
                     : (*artifact)->schedules().empty() ? std::string("cpu")
                                                        : (*artifact)->schedules().front().target;
    auto executable = lathe::backend::load(*artifact, options);
    if (!executable)
      return fail(LATHE_ERROR_UNSUPPORTED, executable.error().message());
    auto tokenizer = lathe::artifactTokenizer(**artifact, path);
    if (!tokenizer)
      return fail(LATHE_ERROR_IO, tokenizer.error().message());
    std::shared_ptr<const lathe::TextTokenizer> text;
    if (tokenizer->has_value())
      text = std::make_shared<const lathe::TextTokenizer>(std::move(**tokenizer));
    *model = new lathe_model{artifact.take(), executable.take(), std::move(text)};
    return LATHE_OK;
  });
}

void lathe_model_close(lathe_model *model) { delete model; }

int64_t lathe_model_vocab(const lathe_model *model) {
  return model ? model->executable->config().vocab : 0;
}
int64_t lathe_model_context(const lathe_model *model) {
  return model ? model->executable->config().context : 0;
}

lathe_status lathe_tokenize(const lathe_model *model, const char *text, int add_special,
                            int32_t *ids, size_t capacity, size_t *count) {
  return guarded([&] {
    if (!model || !text || !count || (!ids && capacity > 0))
      return fail(LATHE_ERROR_INVALID_ARGUMENT, "lathe_tokenize: null argument");
    if (!model->tokenizer)
      return fail(LATHE_ERROR_UNSUPPORTED, "the artifact was compiled without a tokenizer");
    lathe::Expected<std::vector<int32_t>> tokenized = model->tokenizer->encode(text, add_special != 0);
    if (!tokenized)
      return fail(LATHE_ERROR_INVALID_ARGUMENT, "lathe_tokenize: " + tokenized.error().message());
    const std::vector<int32_t> &encoded = *tokenized;
    *count = encoded.size();
    if (encoded.size() > capacity)
      return fail(LATHE_ERROR_CAPACITY, "lathe_tokenize: " + std::to_string(encoded.size()) +
                                            " ids do not fit in " + std::to_string(capacity));
    std::copy(encoded.begin(), encoded.end(), ids);
    return LATHE_OK;
  });
}

lathe_status lathe_detokenize(const lathe_model *model, const int32_t *ids, size_t count,
                              char *text, size_t capacity, size_t *length) {
  return guarded([&] {
    if (!model || (!ids && count > 0) || !length || (!text && capacity > 0))
      return fail(LATHE_ERROR_INVALID_ARGUMENT, "lathe_detokenize: null argument");
    if (!model->tokenizer)
      return fail(LATHE_ERROR_UNSUPPORTED, "the artifact was compiled without a tokenizer");
    for (size_t i = 0; i < count; ++i)
      if (ids[i] < 0 || size_t(ids[i]) >= model->tokenizer->idCount())
        return fail(LATHE_ERROR_INVALID_ARGUMENT,
                    "lathe_detokenize: id " + std::to_string(ids[i]) + " is not in the vocabulary");
    const std::string decoded = model->tokenizer->decode(std::span<const int32_t>(ids, count));
    *length = decoded.size();
    if (decoded.size() + 1 > capacity)
      return fail(LATHE_ERROR_CAPACITY, "lathe_detokenize: " + std::to_string(decoded.size() + 1) +
                                            " bytes do not fit in " + std::to_string(capacity));
    std::memcpy(text, decoded.c_str(), decoded.size() + 1);
    return LATHE_OK;
  });
}

lathe_status lathe_session_create(lathe_model *model, lathe_session **session) {
  return guarded([&] {
    if (!model || !session)
      return fail(LATHE_ERROR_INVALID_ARGUMENT, "lathe_session_create: null argument");
    *session = nullptr;
    auto s = lathe::Session::create(model->executable);
    if (!s)
      return fail(LATHE_ERROR_RUNTIME, s.error().message());
    *session = new lathe_session{model->artifact, model->tokenizer, s.take(), false};
    return LATHE_OK;
  });
}

void lathe_session_destroy(lathe_session *session) { delete session; }

void lathe_session_reset(lathe_session *session) {
  if (session)
    session->session.reset();
}

void lathe_generate_options_init(lathe_generate_options *options) {
  if (!options)
    return;
  const lathe::GenerationOptions defaults;
  options->max_new_tokens = defaults.maxNewTokens;
  options->temperature = defaults.sampler.temperature;
  options->top_p = defaults.sampler.topP;
  options->top_k = defaults.sampler.topK;
  options->seed = defaults.sampler.seed;
  options->stop_at_end_of_text = defaults.stopAtEndOfText ? 1 : 0;
}

lathe_status lathe_generate(lathe_session *session, const int32_t *prompt, size_t count,
                            const lathe_generate_options *options,
                            lathe_token_callback callback, void *user, int64_t *generated) {
  return guarded([&] {
    if (generated)
      *generated = 0;
    if (!session || !options || (!prompt && count > 0))
      return fail(LATHE_ERROR_INVALID_ARGUMENT, "lathe_generate: null argument");
    if (options->max_new_tokens < 0)
      return fail(LATHE_ERROR_INVALID_ARGUMENT, "lathe_generate: max_new_tokens is negative");
    if (session->generating)
      return fail(LATHE_ERROR_INVALID_ARGUMENT,
                  "lathe_generate: the session is generating (called from its own callback)");
    const std::span<const int32_t> ids(prompt, count);
    const lathe::plan::ModelConfig &config = session->session.config();
    if (lathe::Status s = lathe::validatePrompt(config, ids); !s)
      return fail(LATHE_ERROR_INVALID_ARGUMENT, s.error().message());
    lathe::GenerationOptions gen;
    gen.maxNewTokens = options->max_new_tokens;
    gen.sampler.temperature = options->temperature;
    gen.sampler.topP = options->top_p;
    gen.sampler.topK = options->top_k;
    gen.sampler.seed = options->seed;
    if (lathe::Status s = lathe::validateSamplerOptions(gen.sampler); !s)
      return fail(LATHE_ERROR_INVALID_ARGUMENT, s.error().message());
    const lathe::TextTokenizer *tokenizer = session->tokenizer.get();
    gen.stopAtEndOfText = options->stop_at_end_of_text != 0 && tokenizer;
    if (tokenizer)
      gen.stopTokens = tokenizer->stopTokens();
    std::optional<lathe::TextTokenizer::Stream> stream;
    if (tokenizer)
      stream.emplace(*tokenizer, ids);
    session->generating = true;
    struct Done {
      bool &flag;
      ~Done() { flag = false; }
    } done{session->generating};
    bool keepGoing = true;
    gen.keepGoing = [&] { return keepGoing; };
    session->session.reset();
    auto stats = lathe::generate(session->session, ids, gen, [&](int32_t token) {
      if (!callback)
        return;
      const std::string text = stream ? stream->next(token) : std::string();
      keepGoing = callback(token, stream ? text.c_str() : nullptr, user) == 0;
    });
    if (!stats)
      return fail(LATHE_ERROR_RUNTIME, stats.error().message());
    if (generated)
      *generated = stats->generatedTokens;
    return LATHE_OK;
  });
}

} // extern "C"
