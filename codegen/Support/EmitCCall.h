// One EmitC call of a C++ function whose arguments mix SSA values and
// literals: the CPU and HLS code generators emit every kernel call so, the
// CUDA host schedule every launch. And the exported functions of one
// constant that generated shared objects describe themselves with.
#pragma once

#include "mlir/Dialect/EmitC/IR/EmitC.h"
#include "mlir/IR/Builders.h"

#include <variant>

namespace lathe::codegen {

using CallArgument = std::variant<mlir::Value, mlir::Attribute>;

/// callee<templateArgs>(args) at the builder's point: a Value is passed as
/// an operand, an Attribute printed as a literal, in `args` order; no
/// template arguments when `templateArgs` is empty.
inline void emitOpaqueCall(mlir::OpBuilder &b, llvm::StringRef callee,
                           llvm::ArrayRef<CallArgument> args,
                           llvm::ArrayRef<mlir::Attribute> templateArgs = {}) {
  llvm::SmallVector<mlir::Value> operands;
  llvm::SmallVector<mlir::Attribute> order;
  for (const CallArgument &arg : args) {
    if (const mlir::Value *v = std::get_if<mlir::Value>(&arg)) {
      order.push_back(b.getIndexAttr(static_cast<int64_t>(operands.size())));
      operands.push_back(*v);
    } else {
      order.push_back(std::get<mlir::Attribute>(arg));
    }
  }
  mlir::emitc::CallOpaqueOp::create(b, b.getUnknownLoc(), mlir::TypeRange{}, callee, operands,
                                    b.getArrayAttr(order),
                                    templateArgs.empty() ? mlir::ArrayAttr()
                                                         : b.getArrayAttr(templateArgs));
}

/// `name`(), exported (LATHE_EXPORT, which the generated code's ABI header
/// defines), returning the literal `value` of `type`; at the end of the
/// builder's block.
inline void emitConstantFunction(mlir::OpBuilder &b, llvm::StringRef name, mlir::Type type,
                                 llvm::StringRef value) {
  mlir::OpBuilder::InsertionGuard guard(b);
  auto fn = mlir::emitc::FuncOp::create(b, b.getUnknownLoc(), name,
                                        b.getFunctionType({}, {type}));
  fn.setSpecifiersAttr(b.getStrArrayAttr({"LATHE_EXPORT"}));
  b.setInsertionPointToStart(fn.addEntryBlock());
  mlir::emitc::ReturnOp::create(
      b, b.getUnknownLoc(), mlir::emitc::LiteralOp::create(b, b.getUnknownLoc(), type, value));
}

} // namespace lathe::codegen
