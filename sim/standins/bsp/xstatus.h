/* Stand-in for the Xilinx BSP's xstatus.h. */
#ifndef XSTATUS_H
#define XSTATUS_H
#include "xil_types.h"
#define XST_SUCCESS 0L
#define XST_FAILURE 1L
#define XST_INVALID_PARAM 15L
#endif
