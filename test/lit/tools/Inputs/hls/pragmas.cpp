#include <stdint.h>

void pragmas(int32_t a[64]) {
#pragma HLS PIPEPLINE II=1
#pragma HLS pipeline IL=1
#pragma HLS ARRAY_PARTITION variable=a type=cyclic factr=4 dim=1
#pragma HLS UNROLL factor = 2 skip_exit_chek
#pragma HLS DATAFLOWW
#pragma HLS INTERFACE mode=m_axi port=a bundel=gmem
#pragma HLS LOOP_TRIPCOUNT min=1 max=(64 * 2) average=3
#pragma HLS RESOURCE variable=a core=RAM_1P
#pragma HLS
#pragma hls inline off
#pragma HLS stream variable=a depth=-1 type=fifo
#pragma once
#pragma GCC diagnostic push
#pragma HLS INTERFACE mode=m_axii port=a
#pragma HLS array_partition variable=a TYPE=Cyclic
#pragma HLS STREAM variable=a type=queue
#pragma HLS PIPELINE style=frp II=N
  a[0] = 1;
}
