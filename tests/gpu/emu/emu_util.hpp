/* tests/gpu/emu/emu_util.hpp — helpers for the emulated-kernel tests: RNG, bf16 buffers, checks. */
#ifndef LISA_EMU_UTIL_HPP
#define LISA_EMU_UTIL_HPP

#include "cuda_emu.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <numeric>
#include <vector>

/* splitmix64, as tests/common/testutil.h */
struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9e3779b97f4a7c15ull + 1) {}
    uint64_t next() {
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    double uniform(double lo, double hi) { return lo + (hi - lo) * ((double)(next() >> 11) * (1.0 / 9007199254740992.0)); }
};

/* 16-byte aligned buffer of T (host "global memory"); exact size so AddressSanitizer sees overruns. */
template <typename T> struct Buf {
    T *p = nullptr;
    size_t n = 0;
    explicit Buf(size_t n_) : n(n_) {
        p = (T *)aligned_alloc(16, ((n * sizeof(T) + 15) / 16) * 16 + (n ? 0 : 16));
        memset((void *)p, 0xFF, n * sizeof(T)); /* poison: NaN in every float format */
    }
    ~Buf() { free(p); }
    Buf(const Buf &) = delete;
    Buf &operator=(const Buf &) = delete;
    T &operator[](size_t i) { return p[i]; }
};

inline float bf16_round(float v) { return lk_bf16_to_f32(lk_f32_to_bf16(v)); }

/* Fills a bf16 buffer with uniform values and returns the exact (bf16) values as doubles. */
inline std::vector<double> fill_bf16(Buf<lisa_bf16_t> &b, Rng &r, double lo, double hi) {
    std::vector<double> v(b.n);
    for (size_t i = 0; i < b.n; i++) {
        b[i].bits = lk_f32_to_bf16((float)r.uniform(lo, hi));
        v[i] = lk_bf16_to_f32(b[i].bits);
    }
    return v;
}
inline std::vector<double> fill_f32(Buf<float> &b, Rng &r, double lo, double hi) {
    std::vector<double> v(b.n);
    for (size_t i = 0; i < b.n; i++) v[i] = b[i] = (float)r.uniform(lo, hi);
    return v;
}

static int g_failures = 0;

/* Relative L2 error of storing ref in bf16: the floor any bf16-output kernel has. */
inline double bf16_store_l2(size_t n, const std::function<double(size_t)> &ref) {
    double se = 0, sr = 0;
    for (size_t i = 0; i < n; i++) {
        double r = ref(i), e = bf16_round((float)r) - r;
        se += e * e;
        sr += r * r;
    }
    return sr > 0 ? sqrt(se / sr) : 0;
}

/* |got - ref| <= atol + rtol |ref| everywhere, and ‖got - ref‖₂ <= l2 ‖ref‖₂ (catches small
 * systematic errors that hide under an elementwise tolerance); prints the first mismatches, the max
 * error and the relative L2 error. */
inline bool check_close(const char *what, size_t n, const std::function<double(size_t)> &got,
                        const std::function<double(size_t)> &ref, double atol, double rtol, double l2 = 0) {
    size_t bad = 0;
    double max_err = 0, se = 0, sr = 0;
    if (l2 == 0) l2 = rtol > 1e-3 ? 3e-3 : 1e-5;
    for (size_t i = 0; i < n; i++) {
        double g = got(i), r = ref(i), e = fabs(g - r);
        if (std::isnan(r)) { /* a NaN reference (e.g. attention over no keys) wants NaN */
            if (!std::isnan(g)) {
                if (bad < 5) fprintf(stderr, "  %s: [%zu] got %.7g ref NaN\n", what, i, g);
                bad++;
            }
            continue;
        }
        se += e * e;
        sr += r * r;
        bool ok = std::isfinite(g) && e <= atol + rtol * fabs(r);
        if (std::isfinite(e) && e > max_err) max_err = e;
        if (!ok) {
            if (bad < 5) fprintf(stderr, "  %s: [%zu] got %.7g ref %.7g\n", what, i, g, r);
            bad++;
        }
    }
    double rl2 = sr > 0 ? sqrt(se / sr) : sqrt(se);
    bool l2_ok = std::isfinite(rl2) && rl2 <= l2;
    printf("%-58s %s  max|err| %.3g rel-L2 %.2g (%zu elements, atol %.1g rtol %.1g L2 %.1g)\n", what,
           bad || !l2_ok ? "FAIL" : "ok  ", max_err, rl2, n, atol, rtol, l2);
    if (!l2_ok) {
        fprintf(stderr, "  %s: relative L2 error %.3g > %.3g\n", what, rl2, l2);
        g_failures++;
        return false;
    }
    if (bad) {
        fprintf(stderr, "  %s: %zu of %zu out of tolerance\n", what, bad, n);
        g_failures++;
    }
    return bad == 0;
}

/* ---- attention references (test_emu_attention.cpp, test_emu_attn_sm90.cpp) ---------------- */

/* bf16 outputs: elementwise 1e-2 + 1e-2|ref| (values are O(1)), and a relative L2 error at most
 * twice that of merely storing the exact result in bf16 (docs/style.md §2), plus room for P's bf16
 * rounding before P·V (flash, as FlashAttention does). */
inline bool check_bf16(const char *what, size_t n, const std::function<double(size_t)> &got,
                       const std::function<double(size_t)> &ref) {
    double floor_l2 = bf16_store_l2(n, ref);
    printf("  (bf16 storage floor rel-L2 %.2g)\n", floor_l2);
    return check_close(what, n, got, ref, 1e-2, 1e-2, 2.0 * floor_l2 + 5e-4);
}

/* Double-precision attention for one (b, i, h): keys [0, kmax), score(j) given. */
using Acc4 = std::function<double(int b, int t, int h, int d)>;

inline std::vector<double> ref_attention(int B, const std::vector<int> &Tq, const std::vector<int> &Tk, int Hq, int Hkv,
                                         int D, double scale, bool causal, const Acc4 &q, const Acc4 &k, const Acc4 &v,
                                         const std::function<double(int b, int h, int i, int j)> &bias) {
    /* output laid out [b][i][h][d] over the concatenated query rows */
    int total = std::accumulate(Tq.begin(), Tq.end(), 0);
    std::vector<double> out((size_t)total * Hq * D, 0.0);
    int row0 = 0;
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < Tq[b]; i++)
            for (int h = 0; h < Hq; h++) {
                int hk = h / (Hq / Hkv);
                int kmax = Tk[b];
                if (causal) kmax = std::min(kmax, std::max(0, i + Tk[b] - Tq[b] + 1));
                std::vector<double> s(kmax);
                double mx = -INFINITY;
                for (int j = 0; j < kmax; j++) {
                    double dot = 0;
                    for (int d = 0; d < D; d++) dot += q(b, i, h, d) * k(b, j, hk, d);
                    s[j] = dot * scale + (bias ? bias(b, h, i, j) : 0.0);
                    mx = std::max(mx, s[j]);
                }
                double sum = 0;
                for (int j = 0; j < kmax; j++) sum += (s[j] = exp(s[j] - mx));
                for (int d = 0; d < D; d++) {
                    double o = 0;
                    for (int j = 0; j < kmax; j++) o += s[j] * v(b, j, hk, d);
                    out[(((size_t)row0 + i) * Hq + h) * D + d] = sum > 0 ? o / sum : NAN; /* as torch */
                }
            }
        row0 += Tq[b];
    }
    return out;
}

/* Runs a test case and prints its time when it took over half a second (the slow cases show). */
#define TIMED(call)                                                                                \
    do {                                                                                           \
        auto t0_ = std::chrono::steady_clock::now();                                               \
        call;                                                                                      \
        double s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); \
        if (s_ > 0.5) printf("    (%.1f s)\n", s_);                                               \
    } while (0)

#endif
