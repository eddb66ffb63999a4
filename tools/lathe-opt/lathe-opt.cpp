// lathe-opt: mlir-opt with the tfm dialect and Lathe's passes added to every
// upstream dialect and pass.
#include "dialects/KernelPlan/KernelPlanDialect.h"
#include "dialects/Transformer/TransformerDialect.h"
#include "passes/Passes.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::registerAllPasses();
  lathe::registerLathePasses();
  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  registry.insert<lathe::tfm::TransformerDialect, lathe::kplan::PlanDialect>();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "Lathe optimizer driver\n", registry));
}
