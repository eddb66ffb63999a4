/* How generated host code (backend::HostCode: the cpu target's step, the
 * cuda target's host schedule) marks its entry points: exported from the
 * shared object lathe-compile builds with -fvisibility=hidden, with C
 * linkage. Included by both targets' ABI headers, which the generated
 * sources include. */
#ifndef LATHE_RUNTIME_BACKEND_HOSTCODEEXPORT_H
#define LATHE_RUNTIME_BACKEND_HOSTCODEEXPORT_H

#ifdef __cplusplus
#define LATHE_EXPORT extern "C" __attribute__((visibility("default")))
#else
#define LATHE_EXPORT __attribute__((visibility("default")))
#endif

#endif
