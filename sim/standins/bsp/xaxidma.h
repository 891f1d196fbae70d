/* Stand-in for the AXI DMA driver's xaxidma.h (embeddedsw XilinxProcessorIPLib/drivers/axidma):
 * the simple-mode API with the driver's names, signatures and register offsets. The calls drive
 * the simulated DMA engines around the Verilator model of the network (axisim.h); XAxiDma_Busy
 * advances simulated time. */
#ifndef XAXIDMA_H_
#define XAXIDMA_H_
#include "xil_types.h"
#include "xstatus.h"

#define XAXIDMA_DMA_TO_DEVICE 0x00
#define XAXIDMA_DEVICE_TO_DMA 0x01
#define XAXIDMA_TX_OFFSET 0x00000000
#define XAXIDMA_RX_OFFSET 0x00000030
#define XAXIDMA_CR_OFFSET 0x00000000
#define XAXIDMA_SR_OFFSET 0x00000004
#define XAXIDMA_SRCADDR_OFFSET 0x00000018
#define XAXIDMA_DESTADDR_OFFSET 0x00000018
#define XAXIDMA_BUFFLEN_OFFSET 0x00000028
#define XAXIDMA_HALTED_MASK 0x00000001
#define XAXIDMA_IDLE_MASK 0x00000002
#define XAXIDMA_ERR_INTERNAL_MASK 0x00000010
#define XAXIDMA_ERR_SLAVE_MASK 0x00000020
#define XAXIDMA_ERR_DECODE_MASK 0x00000040
#define XAXIDMA_ERR_ALL_MASK 0x00000770
#define XAXIDMA_IRQ_IOC_MASK 0x00001000
#define XAXIDMA_IRQ_DELAY_MASK 0x00002000
#define XAXIDMA_IRQ_ERROR_MASK 0x00004000
#define XAXIDMA_IRQ_ALL_MASK 0x00007000

typedef struct {
    u32 DeviceId;
    UINTPTR BaseAddr;
    int HasStsCntrlStrm;
    int HasMm2S;
    int HasMm2SDRE;
    int Mm2SDataWidth;
    int HasS2Mm;
    int HasS2MmDRE;
    int S2MmDataWidth;
    int HasSg;
    int Mm2sNumChannels;
    int S2MmNumChannels;
    int Mm2SBurstSize;
    int S2MmBurstSize;
    int MicroDmaMode;
    int AddrWidth;
    int SgLengthWidth;
} XAxiDma_Config;

typedef struct XAxiDma {
    UINTPTR RegBase;
    int HasMm2S;
    int HasS2Mm;
    int Initialized;
    int HasSg;
    int TxNumChannels;
    int RxNumChannels;
    int MicroDmaMode;
    int AddrWidth;
} XAxiDma;

#define XAxiDma_HasSg(InstancePtr) ((InstancePtr)->HasSg) ? TRUE : FALSE
#define XAxiDma_IntrDisable(InstancePtr, Mask, Direction) \
    XAxiDma_WriteReg((InstancePtr)->RegBase + (XAXIDMA_RX_OFFSET * (Direction)), XAXIDMA_CR_OFFSET, \
                     XAxiDma_ReadReg((InstancePtr)->RegBase + (XAXIDMA_RX_OFFSET * (Direction)), XAXIDMA_CR_OFFSET) \
                     & ~((Mask) & XAXIDMA_IRQ_ALL_MASK))
#define XAxiDma_IntrAckIrq(InstancePtr, Mask, Direction) \
    XAxiDma_WriteReg((InstancePtr)->RegBase + (XAXIDMA_RX_OFFSET * (Direction)), XAXIDMA_SR_OFFSET, \
                     (Mask) & XAXIDMA_IRQ_ALL_MASK)

/* SDT builds look the DMA up by base address, classic builds by device id: both are a UINTPTR here. */
XAxiDma_Config *XAxiDma_LookupConfig(UINTPTR DeviceIdOrBase);
int XAxiDma_CfgInitialize(XAxiDma *InstancePtr, XAxiDma_Config *Config);
void XAxiDma_Reset(XAxiDma *InstancePtr);
int XAxiDma_ResetIsDone(XAxiDma *InstancePtr);
u32 XAxiDma_Busy(XAxiDma *InstancePtr, int Direction);
u32 XAxiDma_SimpleTransfer(XAxiDma *InstancePtr, UINTPTR BuffAddr, u32 Length, int Direction);
u32 XAxiDma_ReadReg(UINTPTR BaseAddress, u32 RegOffset);
void XAxiDma_WriteReg(UINTPTR BaseAddress, u32 RegOffset, u32 Data);
#endif
