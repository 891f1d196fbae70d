/* The stand-in Xilinx BSP behind xaxidma.h, xil_cache.h, xtime_l.h, xtmrctr.h and xil_printf.h:
 * a host build of a board package's bare-metal program (sw/main.c) runs against the simulated
 * AXI DMA and the Verilator model of the network (axisim.h), with its data cache modelled.
 *
 * Environment: RTLGEN_STALL (none | random), RTLGEN_SEED, RTLGEN_FAULT (none | no_tlast),
 * RTLGEN_MM2S_DUMP (a file that receives every byte the DMA sends, for tests).
 * Geometry and addresses come from the package's rtlgen_net.h, as for the board build.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axisim.h"
#include "rtlgen_net.h"
#include "xaxidma.h"
#include "xil_cache.h"
#include "xil_printf.h"
#include "xil_types.h"
#include "xstatus.h"
#include "xtime_l.h"
#include "xtmrctr.h"

#ifndef RTLGEN_BUF_BYTES
#define RTLGEN_BUF_BYTES 64
#endif
/* The MicroBlaze design's DMA buffer memory (block RAM at RTLGEN_BUF_BASE on the board). */
unsigned char rtlgen_standin_bram[RTLGEN_BUF_BYTES] __attribute__((aligned(4096)));

static void *sim;

static void die(const char *msg) {
    fprintf(stderr, "stand-in BSP: %s\n", msg);
    exit(3);
}

static void *model(void) {
    if (!sim) {
        const char *s = getenv("RTLGEN_STALL");
        const char *seed = getenv("RTLGEN_SEED");
        const char *fault = getenv("RTLGEN_FAULT");
        int stall = s && strcmp(s, "random") == 0;
        sim = axisim_open(RTLGEN_IN_BEAT_BYTES, RTLGEN_OUT_BEAT_BYTES, stall, seed ? strtoull(seed, 0, 10) : 0);
        if (!sim) {
            fprintf(stderr, "stand-in BSP: rtlgen_net.h disagrees with the RTL: %s\n", axisim_last_error());
            exit(3);
        }
        if (fault && strcmp(fault, "no_tlast") == 0) axisim_set_fault(sim, AXISIM_FAULT_NO_TLAST);
    }
    return sim;
}

/* -- memory: what the DMA sees is what was flushed; what it writes is seen after an invalidate -- */

typedef struct {
    UINTPTR addr;
    u32 len;
    unsigned char *data;
} region_t;

#define MAX_REGIONS 64
static region_t dram[MAX_REGIONS];   /* flushed copies of CPU memory */
static region_t dma_out;             /* the bytes S2MM wrote, not yet seen by the CPU */

static region_t *find(UINTPTR addr, u32 len) {
    for (int i = 0; i < MAX_REGIONS; i++)
        if (dram[i].data && dram[i].addr <= addr && addr + len <= dram[i].addr + dram[i].len) return &dram[i];
    return 0;
}

void Xil_DCacheFlushRange(INTPTR adr, u32 len) {
    UINTPTR a = (UINTPTR)adr;
    region_t *r = 0;
    for (int i = 0; i < MAX_REGIONS && !r; i++)
        if (dram[i].data && dram[i].addr == a) r = &dram[i];
    for (int i = 0; i < MAX_REGIONS && !r; i++)
        if (!dram[i].data) r = &dram[i];
    if (!r) die("too many flushed regions");
    if (r->data && r->len < len) {
        free(r->data);
        r->data = 0;
    }
    if (!r->data) r->data = malloc(len ? len : 1);
    r->addr = a;
    r->len = len;
    memcpy(r->data, (const void *)a, len);
}

void Xil_DCacheInvalidateRange(INTPTR adr, u32 len) {
    UINTPTR a = (UINTPTR)adr;
    if (!dma_out.data) return;
    UINTPTR lo = a > dma_out.addr ? a : dma_out.addr;
    UINTPTR hi = (a + len < dma_out.addr + dma_out.len) ? a + len : dma_out.addr + dma_out.len;
    if (lo < hi) memcpy((void *)lo, dma_out.data + (lo - dma_out.addr), hi - lo);
}

void Xil_DCacheEnable(void) {}
void Xil_DCacheDisable(void) {}
void Xil_ICacheEnable(void) {}

/* -- the AXI DMA ------------------------------------------------------------------------------ */

static XAxiDma_Config config = {
    .DeviceId = 0, .BaseAddr = RTLGEN_DMA_BASE, .HasMm2S = 1, .HasS2Mm = 1,
    .Mm2SDataWidth = 8 * RTLGEN_IN_BEAT_BYTES, .S2MmDataWidth = 8 * RTLGEN_OUT_BEAT_BYTES,
    .HasSg = 0, .Mm2sNumChannels = 1, .S2MmNumChannels = 1, .AddrWidth = 32,
};
static int s2mm_pending, mm2s_pending;
static UINTPTR s2mm_addr;
static u32 s2mm_len, s2mm_received;

XAxiDma_Config *XAxiDma_LookupConfig(UINTPTR DeviceIdOrBase) {
    if (DeviceIdOrBase == 0 || DeviceIdOrBase == (UINTPTR)RTLGEN_DMA_BASE) return &config;
    return 0;
}

int XAxiDma_CfgInitialize(XAxiDma *InstancePtr, XAxiDma_Config *Config) {
    memset(InstancePtr, 0, sizeof *InstancePtr);
    InstancePtr->RegBase = Config->BaseAddr;
    InstancePtr->HasMm2S = Config->HasMm2S;
    InstancePtr->HasS2Mm = Config->HasS2Mm;
    InstancePtr->HasSg = Config->HasSg;
    InstancePtr->Initialized = 1;
    model();
    return XST_SUCCESS;
}

void XAxiDma_Reset(XAxiDma *InstancePtr) {
    axisim_reset(model(), 8);
    s2mm_pending = mm2s_pending = 0;
}

int XAxiDma_ResetIsDone(XAxiDma *InstancePtr) { return 1; }

static void finish_s2mm(void) {
    if (s2mm_pending && !axisim_s2mm_busy(sim)) {
        s2mm_received = (u32)axisim_s2mm_received(sim);
        free(dma_out.data);
        dma_out.addr = s2mm_addr;
        dma_out.len = s2mm_received;
        dma_out.data = malloc(s2mm_received ? s2mm_received : 1);
        axisim_s2mm_copy(sim, dma_out.data, s2mm_received);
        s2mm_pending = 0;
    }
    if (mm2s_pending && !axisim_mm2s_busy(sim)) mm2s_pending = 0;
}

u32 XAxiDma_SimpleTransfer(XAxiDma *InstancePtr, UINTPTR BuffAddr, u32 Length, int Direction) {
    void *h = model();
    if (!InstancePtr->Initialized) return XST_FAILURE;
    if (Length == 0 || Length > RTLGEN_DMA_MAX_BYTES) return XST_INVALID_PARAM;
    if (BuffAddr % RTLGEN_DMA_ALIGN) {
        fprintf(stderr, "stand-in BSP: unaligned DMA buffer 0x%lx (the DMA has no realignment engine)\n", (unsigned long)BuffAddr);
        return XST_INVALID_PARAM;
    }
    if (Direction == XAXIDMA_DMA_TO_DEVICE) {
        if (mm2s_pending) return XST_FAILURE;
        region_t *r = find(BuffAddr, Length);
        unsigned char *bytes = malloc(Length);
        if (r) {
            memcpy(bytes, r->data + (BuffAddr - r->addr), Length);
        } else {
            /* The cache was not flushed: the DMA reads whatever memory held, not the CPU's data. */
            fprintf(stderr, "stand-in BSP: MM2S reads 0x%lx..+%u, which was never flushed from the data cache\n",
                    (unsigned long)BuffAddr, Length);
            memset(bytes, 0xA5, Length);
        }
        const char *dump = getenv("RTLGEN_MM2S_DUMP");
        if (dump && *dump) { /* what the DMA sends, for tests: appended transfer by transfer */
            FILE *f = fopen(dump, "ab");
            if (f) {
                fwrite(bytes, 1, Length, f);
                fclose(f);
            }
        }
        int rc = axisim_mm2s_start(h, bytes, Length);
        free(bytes);
        if (rc) return XST_INVALID_PARAM;
        mm2s_pending = 1;
    } else {
        if (s2mm_pending) return XST_FAILURE;
        if (axisim_s2mm_start(h, Length)) return XST_INVALID_PARAM;
        s2mm_pending = 1;
        s2mm_addr = BuffAddr;
        s2mm_len = Length;
        s2mm_received = 0;
    }
    return XST_SUCCESS;
}

u32 XAxiDma_Busy(XAxiDma *InstancePtr, int Direction) {
    void *h = model();
    axisim_run(h, 64);
    finish_s2mm();
    return Direction == XAXIDMA_DMA_TO_DEVICE ? (u32)mm2s_pending : (u32)s2mm_pending;
}

u32 XAxiDma_ReadReg(UINTPTR BaseAddress, u32 RegOffset) {
    void *h = model();
    UINTPTR off = BaseAddress - (UINTPTR)RTLGEN_DMA_BASE + RegOffset;
    finish_s2mm();
    switch (off) {
    case XAXIDMA_SR_OFFSET:
        return mm2s_pending ? 0 : XAXIDMA_IDLE_MASK;
    case XAXIDMA_RX_OFFSET + XAXIDMA_SR_OFFSET:
        if (axisim_s2mm_error(h)) return XAXIDMA_HALTED_MASK | XAXIDMA_ERR_INTERNAL_MASK;
        return s2mm_pending ? 0 : XAXIDMA_IDLE_MASK;
    case XAXIDMA_RX_OFFSET + XAXIDMA_BUFFLEN_OFFSET:
        return s2mm_pending ? 0 : s2mm_received;
    case XAXIDMA_BUFFLEN_OFFSET:
        return 0;
    default:
        return 0;
    }
}

void XAxiDma_WriteReg(UINTPTR BaseAddress, u32 RegOffset, u32 Data) {}

/* -- timers: simulated PL clock cycles ---------------------------------------------------------- */

void XTime_GetTime(XTime *Xtime_Global) {
    u64 cycles = axisim_cycles(model());
    *Xtime_Global = cycles * (COUNTS_PER_SECOND / 1000ULL) / (RTLGEN_PL_CLOCK_HZ / 1000ULL);
}

int XTmrCtr_Initialize(XTmrCtr *InstancePtr, UINTPTR DeviceIdOrBase) {
    memset(InstancePtr, 0, sizeof *InstancePtr);
    InstancePtr->BaseAddress = DeviceIdOrBase;
    InstancePtr->IsReady = XIL_COMPONENT_IS_READY;
    return XST_SUCCESS;
}
void XTmrCtr_SetOptions(XTmrCtr *InstancePtr, u8 n, u32 Options) {}
void XTmrCtr_Reset(XTmrCtr *InstancePtr, u8 n) { InstancePtr->Start[n & 1] = axisim_cycles(model()); }
void XTmrCtr_Start(XTmrCtr *InstancePtr, u8 n) {
    InstancePtr->Running[n & 1] = 1;
    InstancePtr->Start[n & 1] = axisim_cycles(model());
}
void XTmrCtr_Stop(XTmrCtr *InstancePtr, u8 n) { InstancePtr->Running[n & 1] = 0; }
u32 XTmrCtr_GetValue(XTmrCtr *InstancePtr, u8 n) {
    return (u32)(axisim_cycles(model()) - InstancePtr->Start[n & 1]);
}

/* -- the UART ------------------------------------------------------------------------------------ */

void xil_printf(const char8 *ctrl1, ...) {
    /* Only what xil_printf supports: %[0][width](d|u|x|X|c|s) and %%. */
    for (const char *p = ctrl1; *p; p++) {
        if (*p != '%') continue;
        p++;
        if (*p == '%') continue;
        if (*p == '0') p++;
        while (*p >= '0' && *p <= '9') p++;
        if (!*p || !strchr("duxXcs", *p)) {
            fprintf(stderr, "stand-in BSP: xil_printf cannot print the conversion in \"%s\"\n", ctrl1);
            exit(4);
        }
    }
    va_list ap;
    va_start(ap, ctrl1);
    vprintf(ctrl1, ap);
    va_end(ap);
    fflush(stdout);
}
