// axisim: an AXI DMA (simple mode) around the Verilator model "Vaxis" of an rtlgen AXI4-Stream
// top level (see axisim.h). Compiled by rtlgen.sim.hostsim.build_model() with
// -DAXISIM_IN_BYTES=<s_axis_tdata bytes> -DAXISIM_OUT_BYTES=<m_axis_tdata bytes>.
#include "axisim.h"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "Vaxis.h"
#include "verilated.h"

#ifndef AXISIM_IN_BYTES
#error "compile with -DAXISIM_IN_BYTES=<s_axis_tdata width / 8>"
#endif
#ifndef AXISIM_OUT_BYTES
#error "compile with -DAXISIM_OUT_BYTES=<m_axis_tdata width / 8>"
#endif

namespace {

std::string g_error;

// Ports of up to 64 bits are plain integers in Verilator; wider ones are VlWide<words>.
template <typename T>
void put_port(T &port, const uint8_t *b, int n) {
    uint64_t v = 0;
    std::memcpy(&v, b, n < 8 ? n : 8);
    port = static_cast<T>(v);
}
template <std::size_t N>
void put_port(VlWide<N> &port, const uint8_t *b, int n) {
    for (std::size_t i = 0; i < N; i++) {
        uint32_t w = 0;
        int k = n - 4 * static_cast<int>(i);
        if (k > 0) std::memcpy(&w, b + 4 * i, k < 4 ? k : 4);
        port[i] = w;
    }
}
template <typename T>
void get_port(const T &port, uint8_t *b, int n) {
    uint64_t v = static_cast<uint64_t>(port);
    std::memcpy(b, &v, n < 8 ? n : 8);
}
template <std::size_t N>
void get_port(const VlWide<N> &port, uint8_t *b, int n) {
    for (std::size_t i = 0; i < N; i++) {
        uint32_t w = port[i];
        int k = n - 4 * static_cast<int>(i);
        if (k > 0) std::memcpy(b + 4 * i, &w, k < 4 ? k : 4);
    }
}

// (p_valid, p_ready) regimes, re-drawn every kSegment cycles (as the cocotb regression).
const double kRegimes[][2] = {{1.0, 1.0}, {0.5, 0.5}, {0.9, 0.2}, {0.2, 0.9}, {1.0, 0.05}, {0.7, 1.0}};
const int kSegment = 48;

struct Sim {
    VerilatedContext ctx;
    Vaxis *top = nullptr;
    int stall = 0;
    int fault = AXISIM_FAULT_NONE;
    std::mt19937_64 rng;
    std::uniform_real_distribution<double> uni{0.0, 1.0};
    int seg_left = 0;
    double p_valid = 1.0, p_ready = 1.0;
    // MM2S
    std::vector<uint8_t> mm2s;
    uint64_t mm2s_pos = 0;
    bool mm2s_busy = false, presenting = false;
    // S2MM
    std::vector<uint8_t> s2mm;
    uint64_t s2mm_cap = 0, s2mm_pos = 0;
    bool s2mm_busy = false;
    int s2mm_err = 0;
    // statistics
    uint64_t cycles = 0, beats_out = 0, tlasts = 0, idle = 0;
    uint8_t beat_in[AXISIM_IN_BYTES];
    uint8_t beat_out[AXISIM_OUT_BYTES];

    Sim(int stall_, uint64_t seed) : stall(stall_), rng(seed) { top = new Vaxis(&ctx); }
    ~Sim() {
        top->final();
        delete top;
    }

    void edge() {
        top->aclk = 0;
        top->eval();
        top->aclk = 1;
        top->eval();
        cycles++;
    }

    void reset(int n) {
        top->aresetn = 0;
        top->s_axis_tvalid = 0;
        top->s_axis_tlast = 0;
        top->m_axis_tready = 0;
        for (int i = 0; i < n; i++) edge();
        top->aresetn = 1;
        edge();
        mm2s_busy = s2mm_busy = presenting = false;
        s2mm_err = 0;
        idle = 0;
    }

    bool coin(double p) { return p >= 1.0 || uni(rng) < p; }

    void cycle() {
        if (stall) {
            if (--seg_left <= 0) {
                const double *r = kRegimes[rng() % (sizeof kRegimes / sizeof kRegimes[0])];
                p_valid = r[0];
                p_ready = r[1];
                seg_left = kSegment;
            }
        }
        // Drive the inputs (away from the clock edge). A presented beat stays until taken.
        if (!presenting && mm2s_busy && mm2s_pos < mm2s.size() && (!stall || coin(p_valid))) {
            std::memcpy(beat_in, mm2s.data() + mm2s_pos, AXISIM_IN_BYTES);
            put_port(top->s_axis_tdata, beat_in, AXISIM_IN_BYTES);
            bool last = mm2s_pos + AXISIM_IN_BYTES >= mm2s.size();
            top->s_axis_tlast = (last && fault != AXISIM_FAULT_NO_TLAST) ? 1 : 0;
            presenting = true;
        }
        top->s_axis_tvalid = presenting ? 1 : 0;
        bool ready = s2mm_busy && (!stall || coin(p_ready));
        top->m_axis_tready = ready ? 1 : 0;
        top->aclk = 0;
        top->eval();
        bool s_fire = presenting && top->s_axis_tready;
        bool m_fire = ready && top->m_axis_tvalid;
        bool m_last = top->m_axis_tlast;
        if (m_fire) get_port(top->m_axis_tdata, beat_out, AXISIM_OUT_BYTES);
        top->aclk = 1;
        top->eval();
        cycles++;
        idle = (s_fire || m_fire) ? 0 : idle + 1;
        if (s_fire) {
            presenting = false;
            mm2s_pos += AXISIM_IN_BYTES;
            if (mm2s_pos >= mm2s.size()) mm2s_busy = false;
        }
        if (m_fire) {
            beats_out++;
            if (m_last) tlasts++;
            if (s2mm_pos + AXISIM_OUT_BYTES > s2mm_cap) {
                s2mm_err = 1;  // a packet longer than the buffer: DMA internal error, halted
                s2mm_busy = false;
            } else {
                std::memcpy(s2mm.data() + s2mm_pos, beat_out, AXISIM_OUT_BYTES);
                s2mm_pos += AXISIM_OUT_BYTES;
                if (m_last) s2mm_busy = false;
            }
        }
    }
};

}  // namespace

extern "C" {

const char *axisim_last_error(void) { return g_error.c_str(); }
int axisim_in_beat_bytes(void) { return AXISIM_IN_BYTES; }
int axisim_out_beat_bytes(void) { return AXISIM_OUT_BYTES; }

void *axisim_open(int in_beat_bytes, int out_beat_bytes, int stall, uint64_t seed) {
    if (in_beat_bytes != AXISIM_IN_BYTES || out_beat_bytes != AXISIM_OUT_BYTES) {
        char buf[200];
        std::snprintf(buf, sizeof buf,
                      "the model's beats are %d bytes in and %d out, not %d and %d",
                      AXISIM_IN_BYTES, AXISIM_OUT_BYTES, in_beat_bytes, out_beat_bytes);
        g_error = buf;
        return nullptr;
    }
    Sim *s = new Sim(stall, seed);
    s->reset(8);
    return s;
}

void axisim_close(void *h) { delete static_cast<Sim *>(h); }
void axisim_reset(void *h, int cycles) { static_cast<Sim *>(h)->reset(cycles); }
void axisim_set_fault(void *h, int fault) { static_cast<Sim *>(h)->fault = fault; }

int axisim_mm2s_start(void *h, const uint8_t *data, uint64_t n) {
    Sim *s = static_cast<Sim *>(h);
    if (s->mm2s_busy) return -1;
    if (n == 0 || n % AXISIM_IN_BYTES) return -2;
    s->mm2s.assign(data, data + n);
    s->mm2s_pos = 0;
    s->mm2s_busy = true;
    return 0;
}

int axisim_s2mm_start(void *h, uint64_t capacity) {
    Sim *s = static_cast<Sim *>(h);
    if (s->s2mm_busy) return -1;
    if (capacity == 0) return -2;
    s->s2mm.assign(capacity, 0);
    s->s2mm_cap = capacity;
    s->s2mm_pos = 0;
    s->s2mm_err = 0;
    s->s2mm_busy = true;
    return 0;
}

uint64_t axisim_run(void *h, uint64_t max_cycles) {
    Sim *s = static_cast<Sim *>(h);
    uint64_t n = 0;
    while (n < max_cycles && (s->mm2s_busy || s->s2mm_busy)) {
        s->cycle();
        n++;
    }
    return n;
}

int axisim_mm2s_busy(void *h) { return static_cast<Sim *>(h)->mm2s_busy; }
int axisim_s2mm_busy(void *h) { return static_cast<Sim *>(h)->s2mm_busy; }
int axisim_s2mm_error(void *h) { return static_cast<Sim *>(h)->s2mm_err; }
uint64_t axisim_s2mm_received(void *h) { return static_cast<Sim *>(h)->s2mm_pos; }

uint64_t axisim_s2mm_copy(void *h, uint8_t *dst, uint64_t n) {
    Sim *s = static_cast<Sim *>(h);
    uint64_t k = n < s->s2mm_pos ? n : s->s2mm_pos;
    if (k) std::memcpy(dst, s->s2mm.data(), k);
    return k;
}

uint64_t axisim_cycles(void *h) { return static_cast<Sim *>(h)->cycles; }
uint64_t axisim_beats_out(void *h) { return static_cast<Sim *>(h)->beats_out; }
uint64_t axisim_tlasts(void *h) { return static_cast<Sim *>(h)->tlasts; }
uint64_t axisim_idle_cycles(void *h) { return static_cast<Sim *>(h)->idle; }

}  // extern "C"
