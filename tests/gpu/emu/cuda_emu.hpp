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
 * Hopper (kernels/cuda/prims_sm90.cuh), with the same strictness:
 * - TMA (cp.async.bulk.tensor): tensor maps made by emu_tmap_encode_tiled (cuTensorMapEncodeTiled's
 *   rules); box, strides, swizzle on the shared address, out-of-bound elements zero; the copy
 *   lands when its mbarrier is waited for (LAZY; the box reads as 0xFF before) or at issue (EAGER);
 * - mbarriers: arrival count, expect-tx byte counts, phase parity, try_wait; a barrier used
 *   before init, copies nobody waited for abort;
 * - named barriers (bar.sync / bar.arrive with a thread count); mismatched counts or arrivals left
 *   at the end of the block abort;
 * - wgmma (m64nNk16, bf16 in, f32 accumulators): fragment layouts from the PTX ISA, A from
 *   registers or a descriptor, descriptors with no / 32 / 64 / 128-byte swizzles, K- or MN-major;
 *   computed at wgmma.wait_group from the shared memory of that moment, the accumulators read NaN
 *   until then; accumulators written or A registers changed before the wait, a wgmma without wgmma.fence since the last
 *   commit_group, or warps of a warpgroup issuing different sequences abort;
 * - the dynamic shared memory starts 16 bytes past a 1024-byte boundary of the shared window, so a
 *   kernel must align its swizzled tiles itself (as on the device, where nothing promises more).
 */
#ifndef LISA_CUDA_EMU_HPP
#define LISA_CUDA_EMU_HPP

#ifndef LISA_CUDA_EMU
#define LISA_CUDA_EMU 1
#endif
#include "kernels/cuda/prims.cuh"
#include "kernels/cuda/prims_sm90.cuh"

#include <functional>

enum class EmuCopyMode { LAZY, EAGER };

/* Runs fn() once per thread of a grid x block launch with `smem_bytes` of dynamic shared memory. */
void emu_launch_fn(dim3 grid, dim3 block, size_t smem_bytes, const std::function<void()> &fn);

template <typename K, typename... Args>
void emu_launch(dim3 grid, dim3 block, size_t smem_bytes, K kernel, Args... args) {
    emu_launch_fn(grid, block, smem_bytes, [=]() { kernel(args...); });
}

void emu_set_copy_mode(EmuCopyMode m);

/* cuTensorMapEncodeTiled for the emulator (element strides 1, no interleave, zero OOB fill):
 * dims[rank], strides[rank - 1] (bytes, of dims 1..), box[rank], swizzle LK_SWZ_*. Returns NULL or
 * the rule broken. */
const char *emu_tmap_encode_tiled(lk_tmap *m, int elem_bytes, int rank, const void *gaddr, const uint64_t *dims,
                                  const uint64_t *strides, const uint32_t *box, const uint32_t *elem_strides, int swizzle);

#endif
