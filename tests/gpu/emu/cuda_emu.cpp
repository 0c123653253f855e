/* tests/gpu/emu/cuda_emu.cpp — the emulator behind kernels/cuda/prims.cuh (see cuda_emu.hpp). */
#include "cuda_emu.hpp"

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

namespace {

[[noreturn]] void emu_die(const char *fmt, const char *what) {
    fprintf(stderr, "cuda emu: ");
    fprintf(stderr, fmt, what);
    fprintf(stderr, " (block %u,%u,%u thread %u)\n", blockIdx.x, blockIdx.y, blockIdx.z, threadIdx.x);
    abort();
}

/* A barrier over the live threads of a group; a thread that returns from the kernel drops out.
 * Bookkeeping under a mutex; waiters sleep on the generation word with a raw futex, so a release
 * wakes them without a convoy on the mutex (the emulator's run time is mostly these barriers). */
struct Barrier {
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
        for (int spin = 0; gen.load(std::memory_order_acquire) == g; spin++) {
            if (spin < 4) {
                sched_yield();
                continue;
            }
            struct timespec ts = {1, 0};
            syscall(SYS_futex, (uint32_t *)&gen, FUTEX_WAIT_PRIVATE, g, &ts, nullptr, 0);
            if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(60))
                emu_die("deadlock: %s never completed (a thread skipped it?)", what);
        }
    }
    void drop() {
        std::lock_guard<std::mutex> lk(mu);
        expected--;
        if (arrived > 0 && arrived == expected) release_locked();
    }
};

struct Warp {
    Barrier bar;
    std::mutex mu;
    uint32_t live_mask = 0;
    uint64_t slot[32][8];
    const void *addr[32];
};

struct Block {
    Barrier bar;
    std::unique_ptr<Warp[]> warps;
    unsigned char *smem = nullptr;
    size_t smem_bytes = 0;
};

Block *g_block = nullptr;
EmuCopyMode g_mode = EmuCopyMode::LAZY;

struct PendingCopy {
    void *dst;
    const void *src;
    bool valid;
};
thread_local std::vector<std::vector<PendingCopy>> t_groups;
thread_local std::vector<PendingCopy> t_open;
thread_local int t_lane = 0, t_warp = 0;

Warp &my_warp() { return g_block->warps[t_warp]; }

void require_full_warp(Warp &w, const char *what) {
    uint32_t live;
    {
        std::lock_guard<std::mutex> lk(w.mu);
        live = w.live_mask;
    }
    if (live != 0xffffffffu) emu_die("%s with exited lanes (PTX requires all 32 lanes)", what);
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

} // namespace

void emu_set_copy_mode(EmuCopyMode m) { g_mode = m; }

void lk_syncthreads() { g_block->bar.wait("__syncthreads"); }

void lk_syncwarp() { my_warp().bar.wait("__syncwarp"); }

static uint64_t xchg(uint64_t mine, int src_lane, const char *what) {
    Warp &w = my_warp();
    w.slot[t_lane][0] = mine;
    w.bar.wait(what);
    require_full_warp(w, what);
    uint64_t r = w.slot[src_lane & 31][0];
    w.bar.wait(what);
    return r;
}

float lk_shfl_xor(float v, int m) { return lk_bits_f32((uint32_t)xchg(lk_f32_bits(v), t_lane ^ m, "shfl.xor")); }
int lk_shfl_xor_i(int v, int m) { return (int)(uint32_t)xchg((uint32_t)v, t_lane ^ m, "shfl.xor"); }
float lk_shfl(float v, int src) { return lk_bits_f32((uint32_t)xchg(lk_f32_bits(v), src, "shfl.idx")); }

unsigned char *lk_dyn_smem() { return g_block->smem; }

void lk_mma_bf16_16816(float d[4], const uint32_t a[4], const uint32_t b[2]) {
    Warp &w = my_warp();
    for (int i = 0; i < 4; i++) w.slot[t_lane][i] = a[i];
    w.slot[t_lane][4] = b[0];
    w.slot[t_lane][5] = b[1];
    w.bar.wait("mma.sync");
    require_full_warp(w, "mma.sync");
    /* A[r][k]: lane (r%8)*4 + (k%8)/2, register (r>=8) + 2*(k>=8), half k%2.
     * B[k][n]: lane n*4 + (k%8)/2, register 4 + (k>=8), half k%2. */
    auto A = [&](int r, int k) {
        uint32_t reg = (uint32_t)w.slot[(r % 8) * 4 + (k % 8) / 2][(r >= 8) + 2 * (k >= 8)];
        return lk_bf16_to_f32((uint16_t)(reg >> (16 * (k % 2))));
    };
    auto B = [&](int k, int n) {
        uint32_t reg = (uint32_t)w.slot[n * 4 + (k % 8) / 2][4 + (k >= 8)];
        return lk_bf16_to_f32((uint16_t)(reg >> (16 * (k % 2))));
    };
    int g = t_lane >> 2, t = t_lane & 3;
    const int rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
    float out[4];
    for (int i = 0; i < 4; i++) {
        float acc = d[i];
        for (int k = 0; k < 16; k++) acc += A(rows[i], k) * B(k, cols[i]);
        out[i] = acc;
    }
    w.bar.wait("mma.sync");
    for (int i = 0; i < 4; i++) d[i] = out[i];
}

static void ldmatrix(uint32_t r[4], const void *row, bool trans) {
    Warp &w = my_warp();
    check_smem(row, 16, "ldmatrix");
    w.addr[t_lane] = row;
    w.bar.wait("ldmatrix");
    require_full_warp(w, "ldmatrix");
    const int L = t_lane;
    for (int i = 0; i < 4; i++) {
        uint16_t lo, hi;
        if (!trans) {
            const uint16_t *p = (const uint16_t *)w.addr[i * 8 + (L >> 2)];
            lo = p[2 * (L & 3)];
            hi = p[2 * (L & 3) + 1];
        } else {
            lo = ((const uint16_t *)w.addr[i * 8 + 2 * (L & 3)])[L >> 2];
            hi = ((const uint16_t *)w.addr[i * 8 + 2 * (L & 3) + 1])[L >> 2];
        }
        r[i] = (uint32_t)lo | ((uint32_t)hi << 16);
    }
    w.bar.wait("ldmatrix");
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
        t_open.push_back(c);
}

void lk_cp_async_commit() {
    t_groups.push_back(t_open);
    t_open.clear();
}

void lk_cp_async_wait_n(int n) {
    while ((int)t_groups.size() > n) {
        for (const PendingCopy &c : t_groups.front()) do_copy(c);
        t_groups.erase(t_groups.begin());
    }
}

void emu_launch_fn(dim3 grid, dim3 block, size_t smem_bytes, const std::function<void()> &fn) {
    unsigned nthreads = block.x * block.y * block.z;
    if (nthreads == 0 || nthreads % 32 != 0 || nthreads > 1024) {
        fprintf(stderr, "cuda emu: block of %u threads (must be a multiple of 32, <= 1024)\n", nthreads);
        abort();
    }
    if (block.y != 1 || block.z != 1) {
        fprintf(stderr, "cuda emu: only 1-D blocks are emulated\n");
        abort();
    }
    gridDim = grid;
    blockDim = block;
    unsigned nwarps = nthreads / 32;
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                Block b;
                b.bar.expected = (int)nthreads;
                b.warps.reset(new Warp[nwarps]);
                for (unsigned w = 0; w < nwarps; w++) {
                    b.warps[w].bar.expected = 32;
                    b.warps[w].live_mask = 0xffffffffu;
                }
                b.smem_bytes = smem_bytes;
                b.smem = (unsigned char *)malloc(smem_bytes ? smem_bytes : 1);
                memset(b.smem, 0xFF, smem_bytes);
                g_block = &b;
                std::vector<std::thread> threads;
                threads.reserve(nthreads);
                for (unsigned t = 0; t < nthreads; t++) {
                    threads.emplace_back([&, t, bx, by, bz]() {
                        threadIdx = dim3(t, 0, 0);
                        blockIdx = dim3(bx, by, bz);
                        t_lane = (int)(t & 31);
                        t_warp = (int)(t >> 5);
                        t_groups.clear();
                        t_open.clear();
                        fn();
                        if (!t_groups.empty() || !t_open.empty())
                            emu_die("%s", "thread exited with cp.async copies never waited for");
                        Warp &w = my_warp();
                        {
                            std::lock_guard<std::mutex> lk(w.mu);
                            w.live_mask &= ~(1u << t_lane);
                        }
                        w.bar.drop();
                        g_block->bar.drop();
                    });
                }
                for (auto &th : threads) th.join();
                free(b.smem);
                g_block = nullptr;
            }
}

lk_u4 lk_ld16(const void *p) {
    if (((uintptr_t)p & 15u) != 0) emu_die("%s: address not 16-byte aligned", "ld.global.v4");
    lk_u4 r;
    memcpy(r.w, p, 16);
    return r;
}
