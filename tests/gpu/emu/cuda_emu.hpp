/* tests/gpu/emu/cuda_emu.hpp — a host emulator for the CUDA kernel bodies in kernels/cuda/NAME.cuh.
 *
 * Why: the CUDA backend is written on machines without a GPU and first runs on a lent GPU for a
 * few minutes. The kernel bodies are written against kernels/cuda/prims.cuh; compiled with
 * LISA_CUDA_EMU they run here, one host thread per CUDA thread, so their index math, masking,
 * pipelining and numerics are checked against double-precision references in CI (and under
 * AddressSanitizer, which then plays compute-sanitizer's memcheck for global and shared memory).
 *
 * What is emulated (semantics from the PTX ISA):
 * - blocks run one after another; the threads of a block run concurrently (real host threads), so
 *   a missing __syncthreads/__syncwarp shows up as a race or a wrong result;
 * - barriers count live threads (a thread that returned no longer takes part, as on sm_70+); a
 *   barrier that cannot complete for 30 s aborts with "deadlock";
 * - warp collectives (shuffles, ldmatrix, mma.sync) require all 32 lanes live ("aligned" PTX ops);
 * - ldmatrix and cp.async check 16-byte alignment and that shared addresses lie in the dynamic
 *   shared buffer; the buffer starts filled with 0xFF bytes (NaN in every float format);
 * - cp.async copies are deferred to the matching cp.async.wait_group (mode LAZY: catches reads
 *   before the wait) or done at issue (mode EAGER: catches buffers overwritten while still read).
 */
#ifndef LISA_CUDA_EMU_HPP
#define LISA_CUDA_EMU_HPP

#ifndef LISA_CUDA_EMU
#define LISA_CUDA_EMU 1
#endif
#include "kernels/cuda/prims.cuh"

#include <functional>

enum class EmuCopyMode { LAZY, EAGER };

/* Runs fn() once per thread of a grid x block launch with `smem_bytes` of dynamic shared memory. */
void emu_launch_fn(dim3 grid, dim3 block, size_t smem_bytes, const std::function<void()> &fn);

template <typename K, typename... Args>
void emu_launch(dim3 grid, dim3 block, size_t smem_bytes, K kernel, Args... args) {
    emu_launch_fn(grid, block, smem_bytes, [=]() { kernel(args...); });
}

void emu_set_copy_mode(EmuCopyMode m);

#endif
