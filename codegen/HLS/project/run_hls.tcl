# Vitis HLS for a generated project (docs/hls.md):
#   vitis_hls -f run_hls.tcl [PART [CLOCK_NS]]
# C simulation of the testbench (the same run as `make csim`), then C
# synthesis of lathe_hls_step for PART (default the Alveo U280's) at
# CLOCK_NS (default 3.33 ns, 300 MHz). Reports land in
# lathe_hls/solution1/syn/report/.
set part [expr {[llength $argv] > 0 ? [lindex $argv 0] : "xcu280-fsvh2892-2L-e"}]
set clock [expr {[llength $argv] > 1 ? [lindex $argv 1] : 3.33}]
set cflags "-std=c++14 -ffp-contract=off"

open_project -reset lathe_hls
set_top lathe_hls_step
add_files lathe_model.cpp -cflags $cflags
add_files -tb testbench.cpp -cflags $cflags
add_files -tb weights.bin
add_files -tb rope_tables.bin
open_solution -reset solution1 -flow_target vitis
set_part $part
create_clock -period $clock -name default
csim_design -argv "weights.bin rope_tables.bin 1 @CSIM_TOKENS@"
csynth_design
exit
