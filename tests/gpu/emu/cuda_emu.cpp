/* tests/gpu/emu/cuda_emu.cpp — the emulator behind kernels/cuda/prims.cuh (see cuda_emu.hpp).
 *
 * Execution model: blocks run one after another; each warp of a block is a host thread (so warps
 * really run concurrently and a missing __syncthreads shows up as a race or a wrong result); the
 * 32 lanes of a warp are fibers (ucontext) switched only at warp collectives and barriers, which
 * keeps the emulation fast and independent of the OS scheduler.
 *
 * A warp collective is one barrier: every lane writes its operands into the slot set of the
 * current barrier generation (two sets, alternating), waits until all live lanes arrived, then
 * reads. A lane can only overwrite a slot set two collectives later, after every lane has passed
 * the collective in between, i.e. after everyone read it.
 *
 * Hopper (prims_sm90.cuh): mbarriers, named barriers and TMA copies are block state under one
 * mutex; a lane that must wait for one of them parks (WAIT_COND) and the warp's scheduler polls
 * its condition, sleeping on the block's progress counter while nothing can move. wgmma is a
 * warp-level operation (warp w of a warpgroup owns rows 16w..16w+15 of D), gathered at issue
 * and computed when the first lane retires its group in wgmma.wait_group, from the shared memory
 * of that moment; until a lane retires it, the lane's accumulators hold NaN.
 */
#include "cuda_emu.hpp"

#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#else
#define EMU_ASAN 0
#endif

thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

namespace {

[[noreturn]] void emu_die(const char *fmt, const char *what) {
    fprintf(stderr, "cuda emu: ");
    fprintf(stderr, fmt, what);
    fprintf(stderr, " (block %u,%u,%u thread %u)\n", blockIdx.x, blockIdx.y, blockIdx.z, threadIdx.x);
    abort();
}

/* printf-style variant for messages with numbers */
[[noreturn]] __attribute__((format(printf, 1, 2))) void emu_dief(const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    emu_die("%s", buf);
}

/* Block barrier among the warp threads of a block (a warp whose lanes all returned drops out).
 * Bookkeeping under a mutex; waiters sleep on the generation word with a raw futex. */
struct OsBarrier {
    std::mutex mu;
    int expected = 0, arrived = 0;
    std::atomic<uint32_t> gen{0};

    void release_locked() {
        arrived = 0;
        gen.fetch_add(1, std::memory_order_release);
        syscall(SYS_futex, (uint32_t *)&gen, FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
    }
    void wait(const char *what) {
        uint32_t g;
        {
            std::lock_guard<std::mutex> lk(mu);
            g = gen.load(std::memory_order_relaxed);
            if (++arrived == expected) {
                release_locked();
                return;
            }
        }
        auto t0 = std::chrono::steady_clock::now();
        while (gen.load(std::memory_order_acquire) == g) {
            struct timespec ts = {1, 0};
            syscall(SYS_futex, (uint32_t *)&gen, FUTEX_WAIT_PRIVATE, g, &ts, nullptr, 0);
            if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(60))
                emu_die("deadlock: %s never completed (a warp skipped it?)", what);
        }
    }
    void drop() {
        std::lock_guard<std::mutex> lk(mu);
        expected--;
        if (arrived > 0 && arrived == expected) release_locked();
    }
};

struct PendingCopy {
    void *dst;
    const void *src;
    bool valid;
};

enum LaneState { RUNNABLE, WAIT_WARP, WAIT_BLOCK, WAIT_COND, DONE };

struct WgOp;

struct Lane {
    ucontext_t ctx;
    unsigned char *stack = nullptr;
    LaneState state = RUNNABLE;
    std::vector<std::vector<PendingCopy>> groups; /* committed cp.async groups */
    std::vector<PendingCopy> open;                /* not yet committed */
    /* WAIT_COND: parked until cond() holds (mbarrier phase, named barrier release) */
    std::function<bool()> cond;
    const char *cond_what = "";
    std::chrono::steady_clock::time_point cond_t0;
    /* wgmma: issued but not committed, committed groups in order, fenced since the last commit */
    std::vector<std::shared_ptr<WgOp>> wg_open;
    std::vector<std::vector<std::shared_ptr<WgOp>>> wg_groups;
    bool wg_fenced = false;
};

/* What a lane's accumulator registers hold while a wgmma on them is in flight: a signaling NaN
 * (reads give NaN; any arithmetic on it quiets it, so a write is seen at the wait). */
const uint32_t kAccPoison = 0x7f80deadu;

/* The accumulator registers of one wgmma chain as the warp sees them (keyed by lane 0's array):
 * the value every lane's d will receive, and how many issued ops each lane has yet to retire. */
struct WarpAcc {
    int n = 0; /* registers per lane (N/2) */
    float val[32][128];
    int pending[32];
};

/* One wgmma.mma_async as issued by one warp (all 32 lanes). */
struct WgOp {
    int n = 0, ta = 0, tb = 0, warp_in_group = 0;
    bool acc = false, a_regs = false, computed = false;
    uint64_t da = 0, db = 0;
    uint32_t areg[32][4];
    const uint32_t *aptr[32];
    float *dptr[32];
    WarpAcc *chain = nullptr;
};

/* What a lane hands to a wgmma issue (the collective's slot). */
struct WgIssue {
    float *d;
    const uint32_t *a;
    uint32_t areg[4];
    uint64_t da, db;
    int n, ta, tb;
    bool acc;
};

struct Block;

/* One warp: its lanes (fibers) and the scheduler context of its host thread. */
struct Warp {
    Block *block = nullptr;
    int id = 0;
    Lane lanes[32];
    ucontext_t sched;
    const void *sched_stack_bottom = nullptr; /* for AddressSanitizer's fiber switches */
    size_t sched_stack_size = 0;
    int cur = 0;
    int live = 32, arrived = 0;
    uint32_t gen = 0;
    bool full[2] = {true, true}; /* per slot set: did all 32 lanes take part in that collective? */
    const char *waiting_for = "";
    uint64_t slot[2][32][6];
    const void *addr[2][32];
    WgIssue wg_issue[2][32];
    std::shared_ptr<WgOp> wg_op[2];
    uint32_t wg_op_gen[2] = {~0u, ~0u};
    std::map<float *, std::unique_ptr<WarpAcc>> wg_chains;
    const std::function<void()> *fn = nullptr;
};

struct PendingTma {
    unsigned char *dst;
    lk_tmap map;
    int32_t coords[5];
    uint32_t bytes;
};

/* mbarrier state (PTX ISA "mbarrier"): arrivals and transaction bytes still owed by the current
 * phase, whose number's parity try_wait.parity compares against. */
struct MBar {
    uint32_t count = 0;
    int64_t pending = 0, tx = 0;
    uint32_t phase = 0;
    std::vector<PendingTma> copies; /* TMA copies that complete on this barrier, not yet landed */
};

struct NamedBar {
    int expected = 0, arrived = 0;
    uint32_t gen = 0;
};

/* The 4 warps of a warpgroup issue the same wgmma sequence: each issue is checked against the one
 * with the same sequence number from the group's other warps. */
struct WgSeq {
    uint64_t da, db;
    int n, count;
};

struct Block {
    OsBarrier bar;
    unsigned char *window = nullptr; /* 1024-byte aligned: shared address 0 */
    unsigned char *smem = nullptr;   /* the dynamic shared memory, at shared address kSmemBase */
    size_t smem_bytes = 0, window_bytes = 0;
    std::mutex mu; /* the Hopper state below */
    std::map<uint32_t, MBar> mbars;
    NamedBar named[16];
    std::map<uint64_t, WgSeq> wg_seq; /* (warpgroup << 40) | sequence number */
    uint64_t wg_next[32] = {0};       /* per warp: its next sequence number */
    std::atomic<uint32_t> progress{0};
    std::atomic<int> sleepers{0};
};

Block *g_block = nullptr;
EmuCopyMode g_mode = EmuCopyMode::LAZY;
thread_local Warp *t_warp = nullptr;

/* The dynamic shared memory starts 16 bytes past a 1024-byte boundary of the shared window: a
 * kernel that needs 1024-aligned tiles (128-byte swizzles) must align them itself. */
const uint32_t kSmemBase = 16;

/* Something a parked lane may be waiting for changed: wake the warps sleeping on it. */
void bump_progress() {
    Block *b = g_block;
    b->progress.fetch_add(1, std::memory_order_release);
    if (b->sleepers.load(std::memory_order_acquire) > 0)
        syscall(SYS_futex, (uint32_t *)&b->progress, FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
}

/* Fiber stacks: the kernels' frames are small. Kept small also because AddressSanitizer clears the
 * shadow of the whole target stack at every swapcontext (512 KiB stacks made the ASAN run 15x slower). */
const size_t kStack = 64 * 1024;

Lane &me() { return t_warp->lanes[t_warp->cur]; }
int my_lane() { return t_warp->cur; }

/* lane -> scheduler (noinline: swapcontext "returns twice"; keep it out of the callers' frames) */
__attribute__((noinline)) void to_scheduler(bool final_exit) {
    Warp *w = t_warp;
    Lane &l = w->lanes[w->cur];
#if EMU_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(final_exit ? nullptr : &fake, w->sched_stack_bottom, w->sched_stack_size);
    swapcontext(&l.ctx, &w->sched);
    __sanitizer_finish_switch_fiber(fake, &w->sched_stack_bottom, &w->sched_stack_size);
#else
    (void)final_exit;
    swapcontext(&l.ctx, &w->sched);
#endif
}

/* scheduler -> lane i */
__attribute__((noinline)) void to_lane(Warp *w, int i) {
    w->cur = i;
    threadIdx = dim3((unsigned)(w->id * 32 + i), 0, 0);
#if EMU_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, w->lanes[i].stack, kStack);
    swapcontext(&w->sched, &w->lanes[i].ctx);
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
    swapcontext(&w->sched, &w->lanes[i].ctx);
#endif
}

/* Completes the current warp barrier generation. */
void release_warp(Warp *w) {
    w->full[w->gen & 1] = w->live == 32;
    w->arrived = 0;
    w->gen++;
    for (Lane &o : w->lanes)
        if (o.state == WAIT_WARP) o.state = RUNNABLE;
}

/* Warp barrier: returns once every live lane of the warp has called it. */
void warp_wait(const char *what) {
    Warp *w = t_warp;
    Lane &l = me();
    w->waiting_for = what;
    l.state = WAIT_WARP;
    if (++w->arrived == w->live) {
        release_warp(w);
        return;
    }
    to_scheduler(false);
}

void lane_exit_bookkeeping(Warp *w) {
    Lane &l = w->lanes[w->cur];
    if (!l.groups.empty() || !l.open.empty()) emu_die("%s", "thread exited with cp.async copies never waited for");
    if (!l.wg_groups.empty() || !l.wg_open.empty()) emu_die("%s", "thread exited with wgmma operations never waited for");
    l.state = DONE;
    w->live--;
    if (w->arrived > 0 && w->arrived == w->live) { /* the lanes left waiting may proceed */
        release_warp(w);
    }
}

void lane_main() {
    Warp *w = t_warp;
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &w->sched_stack_bottom, &w->sched_stack_size);
#endif
    (*w->fn)();
    lane_exit_bookkeeping(w);
    to_scheduler(true);
    emu_die("%s", "a finished lane was resumed");
}

/* After the barrier of a collective that used slot set p: all 32 lanes must have taken part. */
void require_full_warp(int p, const char *what) {
    if (!t_warp->full[p]) emu_die("%s with exited lanes (PTX requires all 32 lanes)", what);
}

void check_smem(const void *p, size_t n, const char *what) {
    const unsigned char *c = (const unsigned char *)p;
    if (((uintptr_t)p & 15u) != 0) emu_die("%s: shared address not 16-byte aligned", what);
    if (c < g_block->smem || c + n > g_block->smem + g_block->smem_bytes)
        emu_die("%s: address outside the dynamic shared buffer", what);
}

/* Parks the current lane until cond() holds (polled by the warp's scheduler). */
void park_until(const char *what, std::function<bool()> cond) {
    if (cond()) return;
    Lane &l = me();
    l.cond = std::move(cond);
    l.cond_what = what;
    l.cond_t0 = std::chrono::steady_clock::now();
    l.state = WAIT_COND;
    to_scheduler(false);
    l.cond = nullptr;
}

/* Shared address (offset in the shared window) of a pointer into the dynamic shared memory. */
uint32_t saddr_of(const void *p, size_t n, const char *what) {
    const unsigned char *c = (const unsigned char *)p;
    if (c < g_block->smem || c + n > g_block->smem + g_block->smem_bytes)
        emu_die("%s: address outside the dynamic shared buffer", what);
    return (uint32_t)(c - g_block->window);
}
/* ... and back; the n bytes at shared address a must lie in the dynamic shared memory. */
unsigned char *smem_at(uint64_t a, size_t n, const char *what) {
    if (a < kSmemBase || a + n > kSmemBase + g_block->smem_bytes)
        emu_dief("%s: shared address 0x%llx (+%zu bytes) outside the %zu-byte dynamic shared memory", what,
                 (unsigned long long)a, n, g_block->smem_bytes);
    return g_block->window + a;
}

/* The swizzle of TMA and wgmma: 16-byte chunk bits [4, 4+b) ^= bits [7, 7+b) of the shared address
 * (b = 1, 2, 3 for 32, 64, 128 bytes). */
uint64_t swizzle_addr(uint64_t a, int b) { return b ? a ^ (((a >> 7) & ((1u << b) - 1u)) << 4) : a; }

void do_copy(const PendingCopy &c) {
    if (c.valid)
        memcpy(c.dst, c.src, 16);
    else
        memset(c.dst, 0, 16);
}

/* A fresh fiber that will run lane_main (noinline: getcontext "returns twice"). */
__attribute__((noinline)) void init_lane(Lane &l) {
    l.state = RUNNABLE;
    l.groups.clear();
    l.open.clear();
    l.cond = nullptr;
    l.wg_open.clear();
    l.wg_groups.clear();
    l.wg_fenced = false;
    getcontext(&l.ctx);
    l.ctx.uc_stack.ss_sp = l.stack;
    l.ctx.uc_stack.ss_size = kStack;
    l.ctx.uc_link = nullptr;
    makecontext(&l.ctx, lane_main, 0);
}

/* Runs the warp's lanes until all returned; called on the warp's host thread. */
void run_warp(Warp *w) {
    t_warp = w;
    for (Lane &l : w->lanes) init_lane(l);
    w->live = 32, w->arrived = 0, w->gen = 0, w->full[0] = w->full[1] = true;
    w->wg_op[0] = w->wg_op[1] = nullptr;
    w->wg_op_gen[0] = w->wg_op_gen[1] = ~0u;
    w->wg_chains.clear();
    for (;;) {
        const uint32_t seen = g_block->progress.load(std::memory_order_acquire);
        bool ran = false;
        int parked = 0;
        for (int i = 0; i < 32; i++) {
            Lane &l = w->lanes[i];
            if (l.state == WAIT_COND) {
                w->cur = i;
                threadIdx = dim3((unsigned)(w->id * 32 + i), 0, 0);
                if (l.cond()) {
                    l.state = RUNNABLE;
                } else {
                    parked++;
                    if (std::chrono::steady_clock::now() - l.cond_t0 > std::chrono::seconds(60))
                        emu_die("deadlock: %s never completed", l.cond_what);
                }
            }
            if (l.state == RUNNABLE) {
                to_lane(w, i);
                ran = true;
            }
        }
        if (w->live == 0) break;
        if (ran) continue;
        if (parked) { /* sleep until some other warp changes barrier state (or 5 ms pass) */
            struct timespec ts = {0, 5 * 1000 * 1000};
            g_block->sleepers.fetch_add(1, std::memory_order_acq_rel);
            syscall(SYS_futex, (uint32_t *)&g_block->progress, FUTEX_WAIT_PRIVATE, seen, &ts, nullptr, 0);
            g_block->sleepers.fetch_sub(1, std::memory_order_acq_rel);
            continue;
        }
        /* nobody runnable: every live lane waits; at a block barrier they must all be there */
        int at_block = 0;
        for (Lane &l : w->lanes) at_block += l.state == WAIT_BLOCK;
        if (at_block != w->live) {
            threadIdx = dim3((unsigned)(w->id * 32), 0, 0);
            emu_die("deadlock: lanes of one warp wait at different barriers (%s vs __syncthreads)", w->waiting_for);
        }
        g_block->bar.wait("__syncthreads");
        for (Lane &l : w->lanes)
            if (l.state == WAIT_BLOCK) l.state = RUNNABLE;
    }
    g_block->bar.drop();
}

} // namespace

void emu_set_copy_mode(EmuCopyMode m) { g_mode = m; }

void lk_syncthreads() {
    me().state = WAIT_BLOCK;
    to_scheduler(false);
}

void lk_syncwarp() { warp_wait("__syncwarp"); }

static uint64_t xchg(uint64_t mine, int src_lane, const char *what) {
    Warp *w = t_warp;
    const int p = w->gen & 1;
    w->slot[p][my_lane()][0] = mine;
    warp_wait(what);
    require_full_warp(p, what);
    return w->slot[p][src_lane & 31][0];
}

float lk_shfl_xor(float v, int m) { return lk_bits_f32((uint32_t)xchg(lk_f32_bits(v), my_lane() ^ m, "shfl.xor")); }
int lk_shfl_xor_i(int v, int m) { return (int)(uint32_t)xchg((uint32_t)v, my_lane() ^ m, "shfl.xor"); }
float lk_shfl(float v, int src) { return lk_bits_f32((uint32_t)xchg(lk_f32_bits(v), src, "shfl.idx")); }

unsigned char *lk_dyn_smem() { return g_block->smem; }

void lk_mma_bf16_16816(float d[4], const uint32_t a[4], const uint32_t b[2]) {
    Warp *w = t_warp;
    const int p = w->gen & 1, L = my_lane();
    for (int i = 0; i < 4; i++) w->slot[p][L][i] = a[i];
    w->slot[p][L][4] = b[0];
    w->slot[p][L][5] = b[1];
    warp_wait("mma.sync");
    require_full_warp(p, "mma.sync");
    /* A[r][k]: lane (r%8)*4 + (k%8)/2, register (r>=8) + 2*(k>=8), half k%2.
     * B[k][n]: lane n*4 + (k%8)/2, register 4 + (k>=8), half k%2. */
    auto A = [&](int r, int k) {
        uint32_t reg = (uint32_t)w->slot[p][(r % 8) * 4 + (k % 8) / 2][(r >= 8) + 2 * (k >= 8)];
        return lk_bf16_to_f32((uint16_t)(reg >> (16 * (k % 2))));
    };
    auto B = [&](int k, int n) {
        uint32_t reg = (uint32_t)w->slot[p][n * 4 + (k % 8) / 2][4 + (k >= 8)];
        return lk_bf16_to_f32((uint16_t)(reg >> (16 * (k % 2))));
    };
    const int g = L >> 2, t = L & 3;
    const int rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
    for (int i = 0; i < 4; i++) {
        float acc = d[i];
        for (int k = 0; k < 16; k++) acc += A(rows[i], k) * B(k, cols[i]);
        d[i] = acc;
    }
}

static void ldmatrix(uint32_t r[4], const void *row, bool trans) {
    Warp *w = t_warp;
    const int p = w->gen & 1, L = my_lane();
    check_smem(row, 16, "ldmatrix");
    w->addr[p][L] = row;
    warp_wait("ldmatrix");
    require_full_warp(p, "ldmatrix");
    for (int i = 0; i < 4; i++) {
        uint16_t lo, hi;
        if (!trans) {
            const uint16_t *q = (const uint16_t *)w->addr[p][i * 8 + (L >> 2)];
            lo = q[2 * (L & 3)];
            hi = q[2 * (L & 3) + 1];
        } else {
            lo = ((const uint16_t *)w->addr[p][i * 8 + 2 * (L & 3)])[L >> 2];
            hi = ((const uint16_t *)w->addr[p][i * 8 + 2 * (L & 3) + 1])[L >> 2];
        }
        r[i] = (uint32_t)lo | ((uint32_t)hi << 16);
    }
}

void lk_ldmatrix_x4(uint32_t r[4], const void *smem_row) { ldmatrix(r, smem_row, false); }
void lk_ldmatrix_x4_trans(uint32_t r[4], const void *smem_row) { ldmatrix(r, smem_row, true); }

void lk_cp_async_16(void *smem, const void *gmem, bool valid) {
    check_smem(smem, 16, "cp.async");
    if (valid && ((uintptr_t)gmem & 15u) != 0) emu_die("%s: global address not 16-byte aligned", "cp.async");
    PendingCopy c = {smem, gmem, valid};
    if (g_mode == EmuCopyMode::EAGER)
        do_copy(c);
    else
        me().open.push_back(c);
}

void lk_cp_async_commit() {
    Lane &l = me();
    l.groups.push_back(l.open);
    l.open.clear();
}

void lk_cp_async_wait_n(int n) {
    Lane &l = me();
    while ((int)l.groups.size() > n) {
        for (const PendingCopy &c : l.groups.front()) do_copy(c);
        l.groups.erase(l.groups.begin());
    }
}

lk_u4 lk_ld16(const void *p) {
    if (((uintptr_t)p & 15u) != 0) emu_die("%s: address not 16-byte aligned", "ld.global.v4");
    lk_u4 r;
    memcpy(r.w, p, 16);
    return r;
}

/* ============================== Hopper: mbarrier, TMA, named barriers, wgmma ============== */

namespace {

/* The emulator's encoding of a tensor map (lk_tmap.w): magic, address, rank/element size/swizzle,
 * dims[5], byte strides of dims 1..4, box[5] (16 bits each). */
const uint64_t kTmapMagic = 0x31304d544b4c4d45ull; /* "EMLKTM01" */

struct Tmap {
    const unsigned char *base;
    int rank, esize, swz;
    uint64_t dims[5], strides[5]; /* strides[d] in bytes; strides[0] = esize */
    uint32_t box[5];
};

Tmap tmap_decode(const lk_tmap *m) {
    if (m->w[0] != kTmapMagic) emu_die("%s", "TMA: not a tensor map made by emu_tmap_encode_tiled");
    Tmap t;
    t.base = (const unsigned char *)(uintptr_t)m->w[1];
    t.rank = (int)(m->w[2] & 0xff), t.esize = (int)((m->w[2] >> 8) & 0xff), t.swz = (int)((m->w[2] >> 16) & 0xff);
    for (int d = 0; d < 5; d++) {
        t.dims[d] = m->w[3 + d];
        t.strides[d] = d == 0 ? (uint64_t)t.esize : m->w[8 + d - 1];
        t.box[d] = (uint32_t)((d < 4 ? m->w[12] >> (16 * d) : m->w[13]) & 0xffff);
    }
    return t;
}

uint64_t box_bytes(const Tmap &t) {
    uint64_t n = (uint64_t)t.esize;
    for (int d = 0; d < t.rank; d++) n *= t.box[d];
    return n;
}

/* Lands one TMA box: element (i0..i4) of the box goes to byte offset ((i4·b3 + i3)·b2 + ..)·esize
 * of dst, swizzled on its shared address; elements outside the tensor are zeros. */
void tma_perform(const PendingTma &c) {
    const Tmap t = tmap_decode(&c.map);
    const uint32_t dst = (uint32_t)(c.dst - g_block->window);
    const int b = t.swz == LK_SWZ_32B ? 1 : t.swz == LK_SWZ_64B ? 2 : t.swz == LK_SWZ_128B ? 3 : 0;
    uint32_t idx[5] = {0, 0, 0, 0, 0};
    uint64_t off = 0;
    const uint64_t total = box_bytes(t) / (uint64_t)t.esize;
    for (uint64_t e = 0; e < total; e++, off += (uint64_t)t.esize) {
        bool in = true;
        const unsigned char *src = t.base;
        for (int d = 0; d < t.rank; d++) {
            const int64_t g = (int64_t)c.coords[d] + idx[d];
            if (g < 0 || (uint64_t)g >= t.dims[d]) in = false;
            else src += (uint64_t)g * t.strides[d];
        }
        unsigned char *p = g_block->window + swizzle_addr(dst + off, b);
        if (in)
            memcpy(p, src, (size_t)t.esize);
        else
            memset(p, 0, (size_t)t.esize);
        for (int d = 0; d < t.rank; d++) { /* next box element, dim 0 fastest */
            if (++idx[d] < t.box[d]) break;
            idx[d] = 0;
        }
    }
}

MBar &mbar_get(uint64_t *bar, const char *what) {
    const uint32_t a = saddr_of(bar, 8, what);
    if (a % 8) emu_die("%s: mbarrier not 8-byte aligned", what);
    auto it = g_block->mbars.find(a);
    if (it == g_block->mbars.end()) emu_die("%s: mbarrier used before mbarrier.init", what);
    return it->second;
}

/* Completes the current phase when no arrivals and no transaction bytes are owed (block mutex held). */
void mbar_try_complete(MBar &m) {
    if (m.pending == 0 && m.tx == 0) {
        m.phase++;
        m.pending = m.count;
        bump_progress();
    }
}

void mbar_arrive_locked(MBar &m, const char *what) {
    if (m.pending <= 0) emu_die("%s: internal: arrival on a completed phase", what);
    m.pending--;
    mbar_try_complete(m);
}

/* try_wait.parity: lands the TMA copies that complete on this barrier (LAZY mode: nothing is in
 * shared memory before someone waits for it), then checks the phase. */
bool mbar_poll(uint64_t *bar, uint32_t parity) {
    std::lock_guard<std::mutex> lk(g_block->mu);
    MBar &m = mbar_get(bar, "mbarrier.try_wait");
    while (!m.copies.empty()) {
        PendingTma c = m.copies.front();
        m.copies.erase(m.copies.begin());
        tma_perform(c);
        m.tx -= c.bytes;
        mbar_try_complete(m);
    }
    return (m.phase & 1u) != (parity & 1u);
}

void named_check(int id, int n, const char *what) {
    if (id < 1 || id > 15) emu_dief("%s: barrier id %d (1..15; 0 is __syncthreads)", what, id);
    if (n <= 0 || n % 32 || n > (int)(blockDim.x)) emu_dief("%s: thread count %d (a multiple of 32, <= the block)", what, n);
}

/* arrives at named barrier id (block mutex taken here); returns the generation to wait for */
uint32_t named_arrive(int id, int n, const char *what) {
    named_check(id, n, what);
    std::lock_guard<std::mutex> lk(g_block->mu);
    NamedBar &nb = g_block->named[id];
    if (nb.arrived == 0)
        nb.expected = n;
    else if (nb.expected != n)
        emu_dief("%s: barrier %d used with thread counts %d and %d at once", what, id, nb.expected, n);
    const uint32_t gen = nb.gen;
    if (++nb.arrived == nb.expected) {
        nb.arrived = 0;
        nb.gen++;
        bump_progress();
    }
    return gen;
}

/* Shared-memory element (mn, k) of a wgmma operand described by desc (PTX ISA "Matrix
 * Descriptor" canonical layouts; see kernels/cuda/prims_sm90.cuh): mn_major = the operand is
 * M-/N-major (imm-trans = 1). Returns the bf16 bits. */
uint16_t gmma_elem(uint64_t desc, bool mn_major, int mn, int k) {
    const uint64_t start = (desc & 0x3FFFu) << 4, lbo = ((desc >> 16) & 0x3FFFu) << 4, sbo = ((desc >> 32) & 0x3FFFu) << 4;
    const int base_off = (int)((desc >> 49) & 7u), lt = (int)(desc >> 62);
    if (base_off) emu_die("%s", "wgmma: descriptor base offset != 0 is not emulated (align tiles to the swizzle pattern)");
    const int b = lt == 1 ? 3 : lt == 2 ? 2 : lt == 3 ? 1 : 0; /* log2 of the swizzle span in 16-byte units */
    const uint64_t span = 16u << b;                           /* bytes of one swizzle row */
    uint64_t off;
    if (!mn_major) {
        /* K-major: ((8, m), (T, 2k)) : ((span or 16 B, SBO), (2 B, 16 B or LBO)) */
        off = (uint64_t)(mn % 8) * (b ? span : 16) + (uint64_t)(mn / 8) * sbo + (uint64_t)(k % 8) * 2;
        off += b ? (uint64_t)(k / 8) * 16 : (uint64_t)(k / 8) * lbo;
    } else if (b) {
        /* MN-major swizzled: ((T, S, m), (8, k)) : ((2 B, 16 B, LBO), (span, SBO)) */
        const int S = 1 << b;
        off = (uint64_t)(mn % 8) * 2 + (uint64_t)((mn / 8) % S) * 16 + (uint64_t)(mn / (8 * S)) * lbo;
        off += (uint64_t)(k % 8) * span + (uint64_t)(k / 8) * sbo;
    } else {
        /* MN-major, no swizzle: ((T, 1, m), (8, k)) : ((2 B, -, SBO), (16 B, LBO)) */
        off = (uint64_t)(mn % 8) * 2 + (uint64_t)(mn / 8) * sbo + (uint64_t)(k % 8) * 16 + (uint64_t)(k / 8) * lbo;
    }
    const uint64_t a = swizzle_addr(start + off, b);
    uint16_t v;
    memcpy(&v, smem_at(a, 2, "wgmma operand"), 2);
    return v;
}

/* Computes one issued wgmma for its warp: rows 16w .. 16w+15 of D[64 x N] = A·B (+ D). */
void wg_compute(WgOp &op) {
    WarpAcc &acc = *op.chain;
    const int r0 = 16 * op.warp_in_group;
    float a[16][16];
    static thread_local float b[256][16];
    for (int r = 0; r < 16; r++)
        for (int k = 0; k < 16; k++) {
            uint16_t bits;
            if (op.a_regs) { /* lane 4(r%8) + (k%8)/2, register (r>=8) + 2(k>=8), half k%2 */
                const uint32_t reg = op.areg[(r % 8) * 4 + (k % 8) / 2][(r >= 8) + 2 * (k >= 8)];
                bits = (uint16_t)(reg >> (16 * (k % 2)));
            } else {
                bits = gmma_elem(op.da, op.ta != 0, r0 + r, k);
            }
            a[r][k] = lk_bf16_to_f32(bits);
        }
    for (int col = 0; col < op.n; col++)
        for (int k = 0; k < 16; k++) b[col][k] = lk_bf16_to_f32(gmma_elem(op.db, op.tb != 0, col, k));
    for (int r = 0; r < 16; r++)
        for (int col = 0; col < op.n; col++) { /* D[r][col]: lane 4(r%8) + (col%8)/2, register col%2 + 2(r>=8) + 4(col/8) */
            const int lane = (r % 8) * 4 + (col % 8) / 2, reg = (col % 2) + 2 * (r >= 8) + 4 * (col / 8);
            float s = op.acc ? acc.val[lane][reg] : 0.0f;
            for (int k = 0; k < 16; k++) s += a[r][k] * b[col][k];
            acc.val[lane][reg] = s;
        }
    op.computed = true;
}

} // namespace

uint32_t lk_smem_u32(const void *p) { return saddr_of(p, 1, "cvta.to.shared"); }

void lk_mbar_init(uint64_t *bar, uint32_t count) {
    std::lock_guard<std::mutex> lk(g_block->mu);
    const uint32_t a = saddr_of(bar, 8, "mbarrier.init");
    if (a % 8) emu_die("%s", "mbarrier.init: not 8-byte aligned");
    if (count < 1 || count > (1u << 20) - 1) emu_die("%s", "mbarrier.init: count outside [1, 2^20 - 1]");
    auto it = g_block->mbars.find(a);
    if (it != g_block->mbars.end() && !it->second.copies.empty())
        emu_die("%s", "mbarrier.init on a barrier with TMA copies in flight");
    MBar m;
    m.count = count, m.pending = count;
    g_block->mbars[a] = m;
}
void lk_mbar_fence_init() {}
void lk_mbar_arrive(uint64_t *bar) {
    std::lock_guard<std::mutex> lk(g_block->mu);
    mbar_arrive_locked(mbar_get(bar, "mbarrier.arrive"), "mbarrier.arrive");
}
void lk_mbar_arrive_expect_tx(uint64_t *bar, uint32_t bytes) {
    std::lock_guard<std::mutex> lk(g_block->mu);
    MBar &m = mbar_get(bar, "mbarrier.arrive.expect_tx");
    m.tx += bytes;
    mbar_arrive_locked(m, "mbarrier.arrive.expect_tx");
}
bool lk_mbar_try_wait(uint64_t *bar, uint32_t parity) { return mbar_poll(bar, parity); }
void lk_mbar_wait(uint64_t *bar, uint32_t parity) {
    park_until("mbarrier wait", [bar, parity]() { return mbar_poll(bar, parity); });
}

void lk_tma_prefetch(const lk_tmap *m) { (void)tmap_decode(m); }

void lk_tma_load_nd(void *dst, const lk_tmap *m, uint64_t *bar, int rank, const int32_t *coords) {
    const Tmap t = tmap_decode(m);
    if (t.rank != rank) emu_dief("TMA: a %d-d copy through a rank-%d tensor map", rank, t.rank);
    const uint64_t bytes = box_bytes(t);
    const uint32_t a = saddr_of(dst, (size_t)bytes, "cp.async.bulk.tensor");
    const uint32_t align = t.swz == LK_SWZ_NONE ? 128u : 128u << t.swz; /* 256/512/1024 for 32/64/128 B */
    if (a % align) emu_dief("cp.async.bulk.tensor: shared destination 0x%x not aligned to %u bytes", a, align);
    PendingTma c;
    c.dst = (unsigned char *)dst;
    c.map = *m;
    for (int d = 0; d < 5; d++) c.coords[d] = d < rank ? coords[d] : 0;
    c.bytes = (uint32_t)bytes;
    std::lock_guard<std::mutex> lk(g_block->mu);
    MBar &mb = mbar_get(bar, "cp.async.bulk.tensor");
    if (g_mode == EmuCopyMode::EAGER) {
        tma_perform(c);
        mb.tx -= c.bytes;
        mbar_try_complete(mb);
    } else {
        mb.copies.push_back(c);
    }
    bump_progress();
}

void lk_fence_proxy_async() {}

void lk_named_bar_sync(int id, int n) {
    const uint32_t gen = named_arrive(id, n, "bar.sync");
    NamedBar *nb = &g_block->named[id];
    park_until("named barrier (bar.sync)", [nb, gen]() {
        std::lock_guard<std::mutex> lk(g_block->mu);
        return nb->gen != gen;
    });
}
void lk_named_bar_arrive(int id, int n) { (void)named_arrive(id, n, "bar.arrive"); }

void lk_setmaxnreg(int regs, bool inc) {
    if (regs < 24 || regs > 256 || regs % 8) emu_dief("setmaxnreg.%s %d: must be a multiple of 8 in [24, 256]", inc ? "inc" : "dec", regs);
    if (blockDim.x % 128) emu_die("%s", "setmaxnreg: the block is not made of whole warpgroups");
}

void lk_wgmma_fence() { me().wg_fenced = true; }

void lk_wgmma_emu(float *d, int n, const uint32_t *a_regs, uint64_t desc_a, uint64_t desc_b, bool accumulate, int ta, int tb) {
    Warp *w = t_warp;
    Lane &l = me();
    const int p = w->gen & 1, L = my_lane();
    const uint32_t my_gen = w->gen;
    if (!l.wg_fenced) emu_die("%s", "wgmma.mma_async without a wgmma.fence since the last wgmma.commit_group");
    if (n < 8 || n > 256 || n % 8) emu_dief("wgmma: N = %d", n);
    if (a_regs && ta) emu_die("%s", "wgmma: A from registers cannot be transposed");
    WgIssue &is = w->wg_issue[p][L];
    is.d = d, is.a = a_regs, is.da = desc_a, is.db = desc_b, is.n = n, is.ta = ta, is.tb = tb, is.acc = accumulate;
    if (a_regs) memcpy(is.areg, a_regs, sizeof is.areg);
    warp_wait("wgmma.mma_async");
    require_full_warp(p, "wgmma.mma_async");
    if (w->wg_op_gen[p] != my_gen) { /* the first lane past the collective builds the warp's op */
        auto op = std::make_shared<WgOp>();
        const WgIssue &i0 = w->wg_issue[p][0];
        op->n = i0.n, op->ta = i0.ta, op->tb = i0.tb, op->acc = i0.acc, op->a_regs = i0.a != nullptr;
        op->da = i0.da, op->db = i0.db, op->warp_in_group = w->id % 4;
        for (int i = 0; i < 32; i++) {
            const WgIssue &x = w->wg_issue[p][i];
            if (x.n != op->n || x.ta != op->ta || x.tb != op->tb || x.acc != op->acc || (x.a != nullptr) != op->a_regs ||
                x.db != op->db || (!op->a_regs && x.da != op->da))
                emu_die("%s", "wgmma: lanes of one warp issued different operands");
            op->dptr[i] = x.d, op->aptr[i] = x.a;
            if (op->a_regs) memcpy(op->areg[i], x.areg, sizeof op->areg[i]);
        }
        { /* the warpgroup's 4 warps issue the same sequence */
            std::lock_guard<std::mutex> lk(g_block->mu);
            const uint64_t key = ((uint64_t)(w->id / 4) << 40) | g_block->wg_next[w->id]++;
            auto it = g_block->wg_seq.find(key);
            if (it == g_block->wg_seq.end()) {
                g_block->wg_seq[key] = WgSeq{op->da, op->db, op->n, 1};
            } else {
                if (it->second.db != op->db || it->second.n != op->n || (!op->a_regs && it->second.da != op->da))
                    emu_die("%s", "wgmma: the warps of a warpgroup issued different operations (a warp skipped one?)");
                if (++it->second.count == 4) g_block->wg_seq.erase(it);
            }
        }
        auto &slot = w->wg_chains[op->dptr[0]];
        if (!slot) { /* a new chain: the lanes' current values become its input; the registers read NaN */
            slot.reset(new WarpAcc());
            slot->n = op->n / 2;
            for (int i = 0; i < 32; i++) {
                slot->pending[i] = 0;
                for (int r = 0; r < slot->n; r++) {
                    slot->val[i][r] = op->dptr[i][r];
                    memcpy(&op->dptr[i][r], &kAccPoison, 4);
                }
            }
        } else if (slot->n != op->n / 2) {
            emu_die("%s", "wgmma: one accumulator array used with two N");
        }
        for (int i = 0; i < 32; i++) slot->pending[i]++;
        op->chain = slot.get();
        w->wg_op[p] = op;
        w->wg_op_gen[p] = my_gen;
    }
    l.wg_open.push_back(w->wg_op[p]);
}

void lk_wgmma_commit() {
    Lane &l = me();
    l.wg_groups.push_back(l.wg_open);
    l.wg_open.clear();
    l.wg_fenced = false;
}

void lk_wgmma_wait_n(int n) {
    Warp *w = t_warp;
    Lane &l = me();
    const int L = my_lane();
    while ((int)l.wg_groups.size() > n) {
        for (auto &op : l.wg_groups.front()) {
            if (!op->computed) wg_compute(*op);
            if (op->a_regs && memcmp(op->aptr[L], op->areg[L], sizeof op->areg[L]) != 0)
                emu_die("%s", "wgmma: A registers modified before the wgmma completed (wgmma.wait_group)");
            WarpAcc *c = op->chain;
            for (int r = 0; r < c->n; r++) {
                uint32_t bits;
                memcpy(&bits, &op->dptr[L][r], 4);
                if (bits != kAccPoison)
                    emu_die("%s", "wgmma: accumulator registers written while the wgmma was in flight (before wgmma.wait_group)");
            }
            if (--c->pending[L] == 0) {
                memcpy(op->dptr[L], c->val[L], sizeof(float) * (size_t)c->n);
                bool all = true;
                for (int i = 0; i < 32; i++) all = all && c->pending[i] == 0;
                if (all) w->wg_chains.erase(op->dptr[0]);
            }
        }
        l.wg_groups.erase(l.wg_groups.begin());
    }
}

const char *emu_tmap_encode_tiled(lk_tmap *m, int elem_bytes, int rank, const void *gaddr, const uint64_t *dims,
                                  const uint64_t *strides, const uint32_t *box, const uint32_t *elem_strides, int swizzle) {
    /* the rules of cuTensorMapEncodeTiled (cuda.h), for the features the kernels use */
    if (((uintptr_t)m & 63u) != 0) return "tensor map not 64-byte aligned";
    if (elem_bytes != 1 && elem_bytes != 2 && elem_bytes != 4 && elem_bytes != 8) return "element size";
    if (rank < 1 || rank > 5) return "rank outside 1..5";
    if (((uintptr_t)gaddr & 15u) != 0) return "global address not 16-byte aligned";
    if (swizzle < LK_SWZ_NONE || swizzle > LK_SWZ_128B) return "swizzle mode";
    for (int d = 0; d < rank; d++) {
        if (dims[d] == 0 || dims[d] > (1ull << 32)) return "globalDim outside [1, 2^32]";
        if (box[d] == 0 || box[d] > 256) return "boxDim outside [1, 256]";
        if (elem_strides[d] != 1) return "elementStrides other than 1 (not emulated)";
        if (d > 0 && (strides[d - 1] % 16 != 0 || strides[d - 1] >= (1ull << 40)))
            return "globalStrides not a multiple of 16 below 2^40";
    }
    const uint64_t inner = (uint64_t)box[0] * (uint64_t)elem_bytes;
    if (inner % 16) return "boxDim[0] * element size not a multiple of 16 bytes";
    if (swizzle != LK_SWZ_NONE && inner > (16ull << swizzle)) return "inner box dimension larger than the swizzle span";
    memset(m->w, 0, sizeof m->w);
    m->w[0] = kTmapMagic;
    m->w[1] = (uint64_t)(uintptr_t)gaddr;
    m->w[2] = (uint64_t)rank | ((uint64_t)elem_bytes << 8) | ((uint64_t)swizzle << 16);
    for (int d = 0; d < 5; d++) {
        m->w[3 + d] = d < rank ? dims[d] : 1;
        if (d >= 1) m->w[8 + d - 1] = d < rank ? strides[d - 1] : 0;
        const uint64_t bx = d < rank ? box[d] : 1;
        if (d < 4)
            m->w[12] |= bx << (16 * d);
        else
            m->w[13] = bx;
    }
    return nullptr;
}

void emu_launch_fn(dim3 grid, dim3 block, size_t smem_bytes, const std::function<void()> &fn) {
    unsigned nthreads = block.x * block.y * block.z;
    if (nthreads == 0 || nthreads % 32 != 0 || nthreads > 1024 || block.y != 1 || block.z != 1) {
        fprintf(stderr, "cuda emu: block of %u threads (1-D, a multiple of 32, <= 1024)\n", nthreads);
        abort();
    }
    gridDim = grid;
    blockDim = block;
    const unsigned nwarps = nthreads / 32;
    std::unique_ptr<Warp[]> warps(new Warp[nwarps]);
    for (unsigned w = 0; w < nwarps; w++) {
        warps[w].id = (int)w;
        warps[w].fn = &fn;
        for (Lane &l : warps[w].lanes) l.stack = (unsigned char *)malloc(kStack);
    }
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                Block b;
                b.bar.expected = (int)nwarps;
                b.smem_bytes = smem_bytes;
                b.window_bytes = (kSmemBase + smem_bytes + 1023) / 1024 * 1024;
                b.window = (unsigned char *)aligned_alloc(1024, b.window_bytes);
                b.smem = b.window + kSmemBase;
                memset(b.smem, 0xFF, smem_bytes);
#if EMU_ASAN /* only the dynamic shared memory is addressable */
                ASAN_POISON_MEMORY_REGION(b.window, kSmemBase);
                ASAN_POISON_MEMORY_REGION(b.smem + smem_bytes, b.window_bytes - kSmemBase - smem_bytes);
#endif
                g_block = &b;
                std::vector<std::thread> threads;
                for (unsigned w = 0; w < nwarps; w++) {
                    warps[w].block = &b;
                    threads.emplace_back([&, w, bx, by, bz]() {
                        blockIdx = dim3(bx, by, bz);
                        run_warp(&warps[w]);
                    });
                }
                for (auto &th : threads) th.join();
                for (auto &kv : b.mbars)
                    if (!kv.second.copies.empty()) emu_die("%s", "block ended with TMA copies nobody waited for");
                for (int id = 0; id < 16; id++)
                    if (b.named[id].arrived) emu_dief("block ended with %d arrivals pending at named barrier %d",
                                                      b.named[id].arrived, id);
                if (!b.wg_seq.empty()) emu_die("%s", "block ended with a wgmma issued by only part of a warpgroup");
#if EMU_ASAN
                ASAN_UNPOISON_MEMORY_REGION(b.window, b.window_bytes);
#endif
                free(b.window);
                g_block = nullptr;
            }
    for (unsigned w = 0; w < nwarps; w++)
        for (Lane &l : warps[w].lanes) free(l.stack);
}
