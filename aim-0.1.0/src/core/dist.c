/*
 * dist.c - the ranks of a data-parallel run (aim/dist.h): every MPI call of
 * aim is in this file, behind AIM_MPI. Without it (or outside mpirun) each
 * function is the single-process version. The collectives use
 * MPI_COMM_WORLD and the default error handler, so a rank that dies or a
 * failed transfer ends the whole job rather than leaving the others
 * waiting.
 */
#include "config.h"

#include <assert.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "aim/dist.h"
#include "aim/model.h"

#ifdef AIM_MPI
#include <mpi.h>

static aim_dist world;
static int world_up; /* MPI_Init done by us (and not yet finalised) */

/* launched by an MPI launcher: Open MPI's mpirun, or PMI / PMIx (srun) */
static int launched_by_mpi(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE",
                                       "PMI_RANK", NULL};
    for (int i = 0; vars[i]; i++)
        if (getenv(vars[i]))
            return 1;
    return 0;
}

int aim_dist_init(int *argc, char ***argv, aim_err *e)
{
    if (world_up || !launched_by_mpi())
        return 0;
    int provided = 0;
    /* only the thread that called this one makes MPI calls (the engine runs
     * on the main thread in `aim run` and `aim train`) */
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return aim_errf(e, "MPI_Init_thread failed");
    if (provided < MPI_THREAD_FUNNELED) {
        MPI_Finalize();
        return aim_errf(e, "the MPI library gives no MPI_THREAD_FUNNELED support");
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &world.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world.size);
    world_up = 1;
    return 0;
}

const aim_dist *aim_dist_world(void)
{
    return world_up && world.size > 1 ? &world : NULL;
}

void aim_dist_finalize(void)
{
    if (!world_up)
        return;
    world_up = 0;
    MPI_Finalize();
}

void aim_dist_abort(int status)
{
    if (world_up)
        MPI_Abort(MPI_COMM_WORLD, status ? status : 1);
}

int aim_dist_meet(double seconds)
{
    if (!world_up)
        return 0;
    MPI_Request req;
    if (MPI_Ibarrier(MPI_COMM_WORLD, &req) != MPI_SUCCESS)
        return -1;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int done = 0;
        MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (done)
            return 0;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((double)(t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) * 1e-9 > seconds)
            return -1; /* the request stays pending: MPI_Abort follows */
        struct timespec nap = {0, 10 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
}

const char *aim_dist_library(void)
{
    static char buf[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(buf, &len);
    char *nl = strpbrk(buf, ",\n");
    if (nl)
        *nl = 0;
    return buf;
}

void aim_dist_sum(const aim_dist *d, double *v, int n)
{
    if (d && n > 0)
        MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

void aim_dist_max(const aim_dist *d, int *v, int n)
{
    if (d && n > 0)
        MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
}

void aim_dist_bcast(const aim_dist *d, void *buf, size_t bytes)
{
    if (!d)
        return;
    for (size_t off = 0; off < bytes;) {
        size_t k = bytes - off < (size_t)1 << 30 ? bytes - off : (size_t)1 << 30;
        MPI_Bcast((char *)buf + off, (int)k, MPI_BYTE, 0, MPI_COMM_WORLD);
        off += k;
    }
}

void aim_dist_allgather(const aim_dist *d, void *buf, size_t item_bytes, int64_t n)
{
    if (!d || n <= 0)
        return;
    assert(item_bytes <= INT_MAX && n <= INT_MAX);
    MPI_Datatype item;
    MPI_Type_contiguous((int)item_bytes, MPI_BYTE, &item);
    MPI_Type_commit(&item);
    int *count = aim_xmalloc((size_t)d->size * sizeof *count);
    int *at = aim_xmalloc((size_t)d->size * sizeof *at);
    for (int r = 0; r < d->size; r++) {
        at[r] = (int)(n * r / d->size);
        count[r] = (int)(n * (r + 1) / d->size) - at[r];
    }
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, count, at, item, MPI_COMM_WORLD);
    MPI_Type_free(&item);
    free(count);
    free(at);
}

void aim_dist_sum_grads(const aim_dist *d, aim_params *p)
{
    if (!d || !p->grad)
        return;
    /* buckets: [start, end) float ranges over runs of trainable tensors */
    int cap = 16, nreq = 0;
    MPI_Request *req = aim_xmalloc((size_t)cap * sizeof *req);
    for (int i = 0; i < p->n;) {
        if (p->t[i].flags & AIM_P_FROZEN) {
            i++;
            continue;
        }
        size_t start = p->t[i].offset, end = start + p->t[i].numel;
        /* extend over trainable neighbours (the alignment gaps between
         * them are zero on every rank) while the bucket has room */
        int j = i + 1;
        while (j < p->n && !(p->t[j].flags & AIM_P_FROZEN) && p->t[j].offset >= end &&
               p->t[j].offset + p->t[j].numel - start <= AIM_DIST_BUCKET) {
            end = p->t[j].offset + p->t[j].numel;
            j++;
        }
        /* a single tensor larger than a bucket goes in bucket-sized pieces */
        for (size_t s = start; s < end; s += AIM_DIST_BUCKET) {
            size_t k = end - s < AIM_DIST_BUCKET ? end - s : AIM_DIST_BUCKET;
            if (nreq == cap) {
                cap *= 2;
                req = aim_xrealloc(req, (size_t)cap * sizeof *req);
            }
            MPI_Iallreduce(MPI_IN_PLACE, p->grad + s, (int)k, MPI_FLOAT, MPI_SUM,
                           MPI_COMM_WORLD, &req[nreq++]);
        }
        i = j;
    }
    MPI_Waitall(nreq, req, MPI_STATUSES_IGNORE);
    free(req);
}

int aim_dist_same(const aim_dist *d, const void *buf, size_t bytes)
{
    if (!d)
        return 1;
    uLong crc = crc32(0L, Z_NULL, 0);
    for (size_t off = 0; off < bytes;) {
        size_t k = bytes - off < (size_t)1 << 30 ? bytes - off : (size_t)1 << 30;
        crc = crc32(crc, (const Bytef *)buf + off, (uInt)k);
        off += k;
    }
    long long v[2] = {(long long)crc, -(long long)crc}, r[2];
    MPI_Allreduce(v, r, 2, MPI_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
    return r[0] == -r[1];
}

#else /* one process */

int aim_dist_init(int *argc, char ***argv, aim_err *e)
{
    return 0;
}

const aim_dist *aim_dist_world(void)
{
    return NULL;
}

void aim_dist_finalize(void)
{
}

void aim_dist_abort(int status)
{
}

int aim_dist_meet(double seconds)
{
    return 0;
}

const char *aim_dist_library(void)
{
    return NULL;
}

void aim_dist_sum(const aim_dist *d, double *v, int n)
{
}

void aim_dist_max(const aim_dist *d, int *v, int n)
{
}

void aim_dist_bcast(const aim_dist *d, void *buf, size_t bytes)
{
}

void aim_dist_allgather(const aim_dist *d, void *buf, size_t item_bytes, int64_t n)
{
}

void aim_dist_sum_grads(const aim_dist *d, aim_params *p)
{
}

int aim_dist_same(const aim_dist *d, const void *buf, size_t bytes)
{
    return 1;
}

#endif

void aim_dist_share(const aim_dist *d, int64_t n, int64_t *i0, int64_t *i1)
{
    int r = aim_dist_rank(d), s = aim_dist_size(d);
    *i0 = n * r / s;
    *i1 = n * (r + 1) / s;
}
