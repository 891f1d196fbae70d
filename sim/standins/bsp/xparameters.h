/* Stand-in for the xparameters.h a Vitis BSP generates from the .xsa: the device ids of the
 * classic flow (an SDT build, -DSDT, uses base addresses instead, which rtlgen_net.h gives), and
 * the DMA buffer memory of a MicroBlaze design, here an array of the host program. */
#ifndef XPARAMETERS_H
#define XPARAMETERS_H
#include "xil_types.h"
#ifndef SDT
#define XPAR_AXIDMA_0_DEVICE_ID 0U
#define XPAR_TMRCTR_0_DEVICE_ID 0U
#endif
extern unsigned char rtlgen_standin_bram[];
#define RTLGEN_BUF_BASE ((UINTPTR)rtlgen_standin_bram)
#endif
