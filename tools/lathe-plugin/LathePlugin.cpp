// LathePlugin.so: Lathe's dialects and passes for upstream mlir-opt.
//
//   mlir-opt --load-dialect-plugin=LathePlugin.so --load-pass-plugin=LathePlugin.so \
//     --pass-pipeline="builtin.module(lathe-lower-to-plan)" model.mlir
//
// The plugin links libMLIR.so, the library mlir-opt itself runs on, so the
// process holds one MLIR: one context, one pass registry, one TypeID per type.
#include "dialects/KernelPlan/KernelPlanDialect.h"
#include "dialects/Transformer/TransformerDialect.h"
#include "passes/Passes.h"

#include "mlir/Tools/Plugins/DialectPlugin.h"
#include "mlir/Tools/Plugins/PassPlugin.h"
#include "llvm/Config/llvm-config.h"

// The dialect entry point registers the passes as well, so that one
// --load-dialect-plugin is enough.
extern "C" LLVM_ATTRIBUTE_WEAK mlir::DialectPluginLibraryInfo mlirGetDialectPluginInfo() {
  return {MLIR_PLUGIN_API_VERSION, "Lathe", LLVM_VERSION_STRING,
          [](mlir::DialectRegistry *registry) {
            registry->insert<lathe::tfm::TransformerDialect, lathe::kplan::PlanDialect>();
            lathe::registerLathePasses();
          }};
}

extern "C" LLVM_ATTRIBUTE_WEAK mlir::PassPluginLibraryInfo mlirGetPassPluginInfo() {
  return {MLIR_PLUGIN_API_VERSION, "LathePasses", LLVM_VERSION_STRING,
          [] { lathe::registerLathePasses(); }};
}
