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
 */
#include "cuda_emu.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
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

enum LaneState { RUNNABLE, WAIT_WARP, WAIT_BLOCK, DONE };

struct Lane {
    ucontext_t ctx;
    unsigned char *stack = nullptr;
    LaneState state = RUNNABLE;
    std::vector<std::vector<PendingCopy>> groups; /* committed cp.async groups */
    std::vector<PendingCopy> open;                /* not yet committed */
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
    const std::function<void()> *fn = nullptr;
};

struct Block {
    OsBarrier bar;
    unsigned char *smem = nullptr;
    size_t smem_bytes = 0;
};

Block *g_block = nullptr;
EmuCopyMode g_mode = EmuCopyMode::LAZY;
thread_local Warp *t_warp = nullptr;

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
    for (;;) {
        bool ran = false;
        for (int i = 0; i < 32; i++)
            if (w->lanes[i].state == RUNNABLE) {
                to_lane(w, i);
                ran = true;
            }
        if (w->live == 0) break;
        if (ran) continue;
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
                b.smem = (unsigned char *)malloc(smem_bytes ? smem_bytes : 1);
                memset(b.smem, 0xFF, smem_bytes);
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
                free(b.smem);
                g_block = nullptr;
            }
    for (unsigned w = 0; w < nwarps; w++)
        for (Lane &l : warps[w].lanes) free(l.stack);
}
