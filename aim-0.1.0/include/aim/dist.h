/*
 * aim/dist.h - data-parallel training over MPI (`./configure --with-mpi`).
 *
 * `mpirun -np N aim ...` starts N processes (ranks). Each holds the whole
 * model, computes the gradient of its share of every global batch, and the
 * shares are summed with MPI_Allreduce, so every rank applies the same
 * update and the weights stay identical everywhere.
 *
 * Jobs take the ranks as a `const aim_dist *`; NULL means one process, and
 * every function here accepts NULL and then does what one process would (a
 * sum over one rank is the value itself). In a build without MPI, or when
 * the program was not started by mpirun, aim_dist_world() is NULL and all of
 * this is a no-op. Nothing here prints. aim_dist_abort is for front ends
 * only: the library never ends the process.
 */
#ifndef AIM_DIST_H
#define AIM_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "aim/core.h"

typedef struct aim_dist {
    int rank, size;
} aim_dist;

/* Front ends, first thing in main: start MPI if the process was launched by
 * an MPI launcher (mpirun, or srun with PMI/PMIx), otherwise do nothing.
 * Returns 0, or -1 with a message. */
int aim_dist_init(int *argc, char ***argv, aim_err *e);
/* The ranks of this run, or NULL when there is a single process (no MPI,
 * not launched by mpirun, or mpirun -np 1). Like MPI_COMM_WORLD itself this
 * is the one process-wide fact of the module. */
const aim_dist *aim_dist_world(void);
/* Leave MPI (every rank, at a normal exit). */
void aim_dist_finalize(void);
/* Front ends only: end every rank at once with this status (MPI_Abort),
 * after a failure on this one, so the others never wait for it. Returns
 * only when MPI is not running. */
void aim_dist_abort(int status);
/* Front ends, at a failed exit: wait up to `seconds` for every rank to get
 * here too (a failure they all saw: each has printed its message, and MPI
 * can end normally). 0 if they did, -1 if not (then abort). */
int aim_dist_meet(double seconds);
/* "Open MPI v4.1.4, ..." for --version, or NULL in a build without MPI. */
const char *aim_dist_library(void);

static inline int aim_dist_rank(const aim_dist *d)
{
    return d ? d->rank : 0;
}
static inline int aim_dist_size(const aim_dist *d)
{
    return d ? d->size : 1;
}

/* This rank's share [*i0, *i1) of n items: rank r takes n*r/size to
 * n*(r+1)/size, so shares differ by at most one and follow rank order. */
void aim_dist_share(const aim_dist *d, int64_t n, int64_t *i0, int64_t *i1);

/* In place, on every rank: the element-wise sum (max) over the ranks. */
void aim_dist_sum(const aim_dist *d, double *v, int n);
void aim_dist_max(const aim_dist *d, int *v, int n);
/* Rank 0's bytes to every rank. */
void aim_dist_bcast(const aim_dist *d, void *buf, size_t bytes);

/* buf holds n items of item_bytes each, of which this rank has filled its
 * share (aim_dist_share); afterwards every rank holds all n, in order. */
void aim_dist_allgather(const aim_dist *d, void *buf, size_t item_bytes, int64_t n);

/* Sum the gradients of the trainable tensors (not AIM_P_FROZEN) over the
 * ranks, in place. Buckets: runs of neighbouring trainable tensors in table
 * order, at most AIM_DIST_BUCKET floats each, all in flight at once
 * (MPI_Iallreduce), so a frozen trunk (LoRA) costs nothing. */
#define AIM_DIST_BUCKET ((size_t)1 << 22)
struct aim_params;
void aim_dist_sum_grads(const aim_dist *d, struct aim_params *p);

/* 1 if buf holds the same bytes on every rank (their CRC-32s agree). */
int aim_dist_same(const aim_dist *d, const void *buf, size_t bytes);

#endif
