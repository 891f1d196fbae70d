/* Stand-in for the Xilinx BSP's xil_cache.h. The data cache is modelled (standin.c): the AXI DMA
 * reads memory only as last flushed, and the CPU sees what the DMA wrote only after an invalidate. */
#ifndef XIL_CACHE_H
#define XIL_CACHE_H
#include "xil_types.h"
void Xil_DCacheFlushRange(INTPTR adr, u32 len);
void Xil_DCacheInvalidateRange(INTPTR adr, u32 len);
void Xil_DCacheEnable(void);
void Xil_DCacheDisable(void);
void Xil_ICacheEnable(void);
#endif
