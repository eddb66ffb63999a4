// integrate-plan: Lathe's passes in another program, linked from the
// installed package (Lathe::Passes). Reads a tfm model, optionally packs its
// linear weights (lathe-quantize), lowers it to the kernel plan
// (lathe-lower-to-plan, then the plan passes in lathe-compile's order) and
// prints the plan IR, weights elided.
//
//   integrate-plan model.mlir [--quant=bfp4:block=32]
#include "dialects/KernelPlan/KernelPlanDialect.h"
#include "dialects/Transformer/TransformerDialect.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/raw_ostream.h"

#include <string>
#include <string_view>

int main(int argc, char **argv) {
  const char *path = nullptr;
  std::string quant;
  bool badArgument = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg.starts_with("--quant="))
      quant = arg.substr(std::string_view("--quant=").size());
    else if (!path && !arg.starts_with("-"))
      path = argv[i];
    else
      badArgument = true;
  }
  if (!path || badArgument) {
    llvm::errs() << "usage: integrate-plan MODEL.mlir [--quant=FORMAT]\n";
    return 2;
  }

  mlir::DialectRegistry registry;
  registry.insert<mlir::func::FuncDialect>();
  registry.insert<lathe::tfm::TransformerDialect, lathe::kplan::PlanDialect>();
  mlir::MLIRContext context(registry);
  // Errors (parse, verifier, pass) are printed by the context's default handler.
  mlir::OwningOpRef<mlir::ModuleOp> module = mlir::parseSourceFile<mlir::ModuleOp>(path, &context);
  if (!module)
    return 1;

  mlir::PassManager pm(&context);
  if (!quant.empty()) {
    lathe::QuantizeOptions options;
    options.format = quant;
    pm.addPass(lathe::createQuantize(options));
  }
  pm.addPass(lathe::createLowerToPlan());
  mlir::OpPassManager &fn = pm.nest<mlir::func::FuncOp>();
  fn.addPass(lathe::createPlanActivations());
  fn.addPass(lathe::createPlanGroupMatmuls());
  fn.addPass(lathe::createPlanFuseAddRMSNorm());
  fn.addPass(lathe::createPlanReuseBuffers());
  if (mlir::failed(pm.run(*module)))
    return 1;

  module->print(llvm::outs(),
                mlir::OpPrintingFlags().elideLargeElementsAttrs(16).elideLargeResourceString(64));
  llvm::outs() << "\n";
  // The op classes generated from Lathe's ODS come with the installed headers.
  module->walk([](lathe::tfm::WeightOp weight) {
    llvm::outs() << "// weight " << weight.getSymName() << ": " << weight.getType() << "\n";
  });
  return 0;
}
