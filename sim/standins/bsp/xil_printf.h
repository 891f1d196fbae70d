/* Stand-in for the Xilinx BSP's xil_printf.h: prints to stdout (the board's UART). Only the
 * conversions xil_printf itself supports are accepted (%d %u %x %X %c %s %%, with a width and the
 * 0 flag); anything else aborts, so a program that passes here prints correctly on the board. */
#ifndef XIL_PRINTF_H
#define XIL_PRINTF_H
#include "xil_types.h"
void xil_printf(const char8 *ctrl1, ...) __attribute__((format(printf, 1, 2)));
#define print(s) xil_printf("%s", (s))
#endif
