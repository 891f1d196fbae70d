/* Stand-in for the Xilinx BSP's xtime_l.h (Cortex-A9 / A53 global timer). It counts simulated PL
 * clock cycles scaled to COUNTS_PER_SECOND (the A9 global timer of a 650 MHz Zynq-7000). */
#ifndef XTIME_L_H
#define XTIME_L_H
#include "xil_types.h"
typedef u64 XTime;
#define COUNTS_PER_SECOND 325000000ULL
void XTime_GetTime(XTime *Xtime_Global);
#endif
