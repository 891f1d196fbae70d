/* axisim: an AXI DMA (simple mode) around a Verilator model of an rtlgen AXI4-Stream top level.
 *
 * The model is built by rtlgen.sim.hostsim.build_model(): Verilator compiles the top level with
 * the class prefix "Vaxis", and axisim.cpp, compiled with -DAXISIM_IN_BYTES/-DAXISIM_OUT_BYTES
 * (the beat widths of s_axis/m_axis), becomes libaxisim.so. Two engines run around the model,
 * as the AXI DMA's do:
 *
 *   MM2S  streams a buffer into s_axis, beat by beat, tlast on its last beat;
 *   S2MM  takes m_axis beats into a buffer until tlast; a packet longer than the buffer is a
 *         DMA internal error (the engine halts), as on the AXI DMA.
 *
 * Stalls: 0 = none (the engines never pause), 1 = random tvalid gaps (MM2S) and tready
 * back-pressure (S2MM) in regimes that change every 48 cycles, seeded; the same regimes as the
 * cocotb AXI regression. Time only advances in axisim_run().
 *
 * Users: the stand-in Xilinx BSP (standins/bsp/standin.c: XAxiDma_SimpleTransfer/Busy) and the
 * stand-in pynq module (standins/pynq, through ctypes).
 */
#ifndef RTLGEN_AXISIM_H
#define RTLGEN_AXISIM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Faults to inject (axisim_set_fault): an MM2S engine that never asserts s_axis_tlast. */
#define AXISIM_FAULT_NONE 0
#define AXISIM_FAULT_NO_TLAST 1

/* A reset model; NULL (with axisim_last_error()) when the beat widths differ from the model's. */
void *axisim_open(int in_beat_bytes, int out_beat_bytes, int stall, uint64_t seed);
void axisim_close(void *h);
const char *axisim_last_error(void);
int axisim_in_beat_bytes(void);
int axisim_out_beat_bytes(void);
/* aresetn low for `cycles` clock edges, engines stopped. */
void axisim_reset(void *h, int cycles);
void axisim_set_fault(void *h, int fault);
/* Start MM2S with a copy of `n` bytes (a whole number of beats). 0, or -1 busy, -2 bad length. */
int axisim_mm2s_start(void *h, const uint8_t *data, uint64_t n);
/* Start S2MM into an internal buffer of `capacity` bytes. 0, or -1 busy, -2 bad length. */
int axisim_s2mm_start(void *h, uint64_t capacity);
/* Run up to max_cycles clock cycles, fewer when both engines finish; returns the cycles run. */
uint64_t axisim_run(void *h, uint64_t max_cycles);
int axisim_mm2s_busy(void *h);
int axisim_s2mm_busy(void *h);
/* 1 after a packet longer than the S2MM buffer (the engine halted). */
int axisim_s2mm_error(void *h);
uint64_t axisim_s2mm_received(void *h);
/* Copy up to n received bytes to dst; returns the bytes copied. */
uint64_t axisim_s2mm_copy(void *h, uint8_t *dst, uint64_t n);
uint64_t axisim_cycles(void *h);
/* m_axis beats taken, and how many of them carried tlast, since the model was opened. */
uint64_t axisim_beats_out(void *h);
uint64_t axisim_tlasts(void *h);
/* Clock cycles since the last handshake on either stream. */
uint64_t axisim_idle_cycles(void *h);

#ifdef __cplusplus
}
#endif
#endif
