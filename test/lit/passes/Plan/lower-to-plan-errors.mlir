// RUN: lathe-opt %s --split-input-file --lathe-lower-to-plan --verify-diagnostics

// An op the plan has no kernel for is one error on that op, not the
// conversion driver's "failed to legalize".
func.func private @helper(tensor<?x8xf32>) -> tensor<?x8xf32>
func.func @unsupported(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  // expected-error @+1 {{'func.call' op cannot be lowered to a kernel plan: the plan has no kernel for it}}
  %y = func.call @helper(%x) : (tensor<?x8xf32>) -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}
