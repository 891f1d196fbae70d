/* Stand-in for the AXI Timer driver's xtmrctr.h (MicroBlaze designs): counter 0 counts simulated
 * PL clock cycles. XTmrCtr_Initialize takes a device id (classic) or a base address (SDT). */
#ifndef XTMRCTR_H
#define XTMRCTR_H
#include "xil_types.h"
#include "xstatus.h"
#define XTC_AUTO_RELOAD_OPTION 0x00000010UL
#define XTC_DOWN_COUNT_OPTION 0x00000004UL
typedef struct {
    UINTPTR BaseAddress;
    u32 IsReady;
    u64 Start[2];
    u32 Running[2];
} XTmrCtr;
int XTmrCtr_Initialize(XTmrCtr *InstancePtr, UINTPTR DeviceIdOrBase);
void XTmrCtr_SetOptions(XTmrCtr *InstancePtr, u8 TmrCtrNumber, u32 Options);
void XTmrCtr_Reset(XTmrCtr *InstancePtr, u8 TmrCtrNumber);
void XTmrCtr_Start(XTmrCtr *InstancePtr, u8 TmrCtrNumber);
void XTmrCtr_Stop(XTmrCtr *InstancePtr, u8 TmrCtrNumber);
u32 XTmrCtr_GetValue(XTmrCtr *InstancePtr, u8 TmrCtrNumber);
#endif
