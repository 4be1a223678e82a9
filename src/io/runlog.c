/*
 * runlog.c - a run folder's event log (aim/runlog.h): each event to the
 * JSON Lines metrics log and, as scalars, to the TensorBoard event file
 * beside it; resuming truncates the log and rebuilds the event file; run.json.
 * Not a reader: aim/metrics.h reads the log back.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/file.h>
#include <unistd.h>

#include "aim/dist.h"
#include "aim/io.h"
#include "aim/json.h"
#include "aim/model.h"
#include "aim/metrics.h"
#include "aim/runlog.h"

struct aim_runlog {
    FILE *mf;              /* metrics.jsonl, appended to */
    aim_tfevents *tf;      /* the event file beside it */
    char *path;            /* metrics_path */
    char *run;
    const char *kind;      /* of the event being written */
    int64_t step;
    double wall;
    char warning[AIM_ERR_MAX]; /* what opening it put right, or "" */
};

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------ resuming */

typedef struct kept_lines {
    const uint8_t *buf;
    size_t len;
    int64_t upto;
    int bad, first_bad; /* lines that are not metrics objects, the first one's number */
} kept_lines;

static int write_kept(FILE *f, void *ctx, aim_err *e)
{
    (void)e;
    kept_lines *k = ctx;
    size_t i = 0;
    int line = 0;
    while (i < k->len) {
        const uint8_t *nl = memchr(k->buf + i, '\n', k->len - i);
        if (!nl)
            break; /* a partial last line: the writer was killed */
        size_t end = (size_t)(nl - k->buf);
        line++;
        /* the whole line is parsed, so "step" is found however long the
         * run name before it is */
        int64_t step;
        if (end == i) {
            /* an empty line: dropped quietly */
        } else if (aim_metrics_line_step((const char *)k->buf + i, end - i, &step) != 0) {
            if (!k->bad++)
                k->first_bad = line;
        } else if (step <= k->upto) {
            fwrite(k->buf + i, 1, end + 1 - i, f);
        }
        i = end + 1;
    }
    return 0;
}

/* Drop metrics lines logged after the step we resume from (the interrupted
 * run got further than its last checkpoint), any partial last line, and
 * lines that are not metrics objects (counted in *bad, the first at line
 * *first_bad), which would make the log unreadable. */
static int truncate_metrics(const char *path, int64_t upto, int *bad, int *first_bad,
                            aim_err *e)
{
    if (aim_file_size(path, NULL) < 0)
        return 0; /* nothing logged yet */
    uint8_t *buf;
    size_t len;
    if (aim_read_file(path, (uint64_t)1 << 32, &buf, &len, e) != 0)
        return -1;
    kept_lines k = {buf, len, upto, 0, 0};
    int rc = aim_write_atomic(path, write_kept, &k, e);
    free(buf);
    *bad = k.bad;
    *first_bad = k.first_bad;
    return rc;
}

/* The event file beside the metrics log; on resume it is rebuilt from the
 * (already truncated) log so it holds no steps past the checkpoint. The log
 * holds scalars only, so image summaries written before the resume are not
 * carried over: a resumed run's event file has images from the resume on.
 * Acceptable: they are pictures of the model at that time, and the new ones
 * show it from here. */
static aim_tfevents *open_events(const char *metrics_path, int resume, aim_err *e)
{
    char *dir = aim_dirname(metrics_path);
    char *path = aim_xasprintf("%s/events.out.tfevents.aim", dir);
    free(dir);
    if (resume && aim_file_size(metrics_path, NULL) >= 0) {
        aim_metrics mm;
        if (aim_metrics_read(metrics_path, &mm, e) != 0 ||
            aim_metrics_write_tfevents(&mm, path, e) != 0) {
            aim_metrics_free(&mm);
            free(path);
            return NULL;
        }
        aim_metrics_free(&mm);
    }
    aim_tfevents *w = aim_tfevents_open_path(path, e);
    free(path);
    return w;
}

/* ------------------------------------------------------------ open, close */

int aim_runlog_writer_active(const char *metrics_path)
{
    int fd = open(metrics_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int rc = 0;
    if (flock(fd, LOCK_SH | LOCK_NB) != 0)
        rc = errno == EWOULDBLOCK ? 1 : -1;
    close(fd); /* releases the shared lock if it was taken */
    return rc;
}

aim_runlog *aim_runlog_open(const char *metrics_path, const char *run, int64_t resume_step,
                            aim_err *e)
{
    int bad = 0, first_bad = 0;
    /* two writers would interleave their lines (and a resume would cut the
     * other's log): the writer holds a lock on the log while it writes */
    if (aim_runlog_writer_active(metrics_path) == 1) {
        char *dir = aim_dirname(metrics_path);
        aim_errf(e, "%s: another process is writing this run (watch it with `aim tui %s`)",
                 metrics_path, dir);
        free(dir);
        return NULL;
    }
    if (resume_step >= 0 &&
        truncate_metrics(metrics_path, resume_step, &bad, &first_bad, e) != 0)
        return NULL;
    FILE *mf = fopen(metrics_path, "ae");
    if (!mf) {
        aim_errf(e, "%s: cannot open for writing: %s", metrics_path, strerror(errno));
        return NULL;
    }
    if (flock(fileno(mf), LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
        fclose(mf);
        aim_errf(e, "%s: another process is writing this run", metrics_path);
        return NULL;
    } /* a file system without locks: no lock, and followers fall back on time */
    aim_tfevents *tf = open_events(metrics_path, resume_step >= 0, e);
    if (!tf) {
        fclose(mf);
        return NULL;
    }
    aim_runlog *l = aim_xcalloc(1, sizeof *l);
    l->mf = mf;
    l->tf = tf;
    l->path = aim_xstrdup(metrics_path);
    l->run = aim_xstrdup(run ? run : "run");
    if (bad)
        snprintf(l->warning, sizeof l->warning, "%s: %d %s dropped (the first was line %d)",
                 metrics_path, bad,
                 bad > 1 ? "lines that are not metrics objects"
                         : "line that is not a metrics object",
                 first_bad);
    return l;
}

const char *aim_runlog_warning(const aim_runlog *l)
{
    return l ? l->warning : "";
}

/* 0 when dir holds no run.json or a job's (it has a "kind"); a pretraining
 * run's is never replaced */
static int check_info(const char *dir, aim_err *e)
{
    char *path = aim_xasprintf("%s/run.json", dir);
    uint8_t *old = NULL;
    size_t len = 0;
    int rc = 0;
    if (aim_read_file(path, 1 << 20, &old, &len, NULL) == 0) {
        if (!aim_json_has(old, len, "kind"))
            rc = aim_errf(e, "%s: this folder holds a pretraining run; give the job a folder "
                             "of its own", path);
        free(old);
    }
    free(path);
    return rc;
}

aim_runlog *aim_runlog_open_dir(const char *dir, aim_err *e)
{
    if (aim_mkdir_p(dir, e) != 0 || check_info(dir, e) != 0)
        return NULL;
    char *path = aim_xasprintf("%s/metrics.jsonl", dir);
    /* the folder's name, without trailing slashes */
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    char *name = aim_xasprintf("%.*s", (int)n, dir);
    aim_runlog *l = aim_runlog_open(path, aim_basename(name), -1, e);
    free(name);
    free(path);
    return l;
}

int aim_runlog_open_lead(const char *dir, const struct aim_dist *dist, aim_runlog **log,
                         aim_err *e)
{
    *log = NULL;
    int bad = aim_dist_rank(dist) == 0 && !(*log = aim_runlog_open_dir(dir, e));
    int any = bad;
    aim_dist_max(dist, &any, 1);
    if (any && !bad) {
        aim_runlog_close(*log, NULL);
        *log = NULL;
        return aim_errf(e, "%s: rank 0 cannot make the run folder (its message says why)", dir);
    }
    return any ? -1 : 0;
}

int aim_runlog_write_info(aim_runlog *l, aim_write_fn fn, void *ctx, aim_err *e)
{
    if (!l)
        return 0;
    char *dir = aim_dirname(l->path);
    char *path = aim_xasprintf("%s/run.json", dir);
    free(dir);
    int rc = aim_write_atomic(path, fn, ctx, e);
    free(path);
    return rc;
}

int aim_runlog_close(aim_runlog *l, aim_err *e)
{
    if (!l)
        return 0;
    int rc = 0;
    if (aim_tfevents_close(l->tf) != 0)
        rc = aim_errf(e, "%s: TensorBoard event file write failed", l->path);
    if (fclose(l->mf) != 0 && rc == 0)
        rc = aim_errf(e, "%s: write failed: %s", l->path, strerror(errno));
    free(l->path);
    free(l->run);
    free(l);
    return rc;
}

aim_tfevents *aim_runlog_events(aim_runlog *l)
{
    return l ? l->tf : NULL;
}

int aim_runlog_flush(aim_runlog *l)
{
    if (!l)
        return 0;
    int rc = fflush(l->mf) != 0 ? -1 : 0;
    return aim_tfevents_flush(l->tf) != 0 ? -1 : rc;
}

/* ------------------------------------------------------------ events */

void aim_runlog_begin(aim_runlog *l, int64_t step, const char *kind)
{
    if (!l)
        return;
    l->step = step;
    l->kind = kind;
    l->wall = wall_now();
    fprintf(l->mf, "{\"run\":");
    aim_json_string(l->mf, l->run);
    fprintf(l->mf, ",\"step\":%lld,\"kind\":\"%s\",\"wall\":%.3f", (long long)step, kind,
            l->wall);
}

void aim_runlog_num(aim_runlog *l, const char *key, double v)
{
    if (!l)
        return;
    /* a JSON number, or null for NaN / Inf (JSON has no such values) */
    if (isfinite(v))
        fprintf(l->mf, ",\"%s\":%.9g", key, v);
    else
        fprintf(l->mf, ",\"%s\":null", key);
    if (isfinite(v)) {
        char tag[96];
        snprintf(tag, sizeof tag, "%s/%s", l->kind, key);
        aim_tfevents_scalar(l->tf, tag, l->step, l->wall, (float)v);
    }
}

void aim_runlog_array(aim_runlog *l, const char *key, const float *v, int n)
{
    if (!l)
        return;
    fprintf(l->mf, ",\"%s\":[", key);
    for (int i = 0; i < n; i++)
        fprintf(l->mf, "%s%.7g", i ? "," : "", v[i]);
    fprintf(l->mf, "]");
    for (int i = 0; i < n; i++) {
        char tag[96];
        snprintf(tag, sizeof tag, "%s/%s_block%d", l->kind, key, i + 1);
        aim_tfevents_scalar(l->tf, tag, l->step, l->wall, v[i]);
    }
}

int aim_runlog_end(aim_runlog *l)
{
    if (!l)
        return 0;
    fprintf(l->mf, "}\n");
    return ferror(l->mf) ? -1 : 0;
}

int aim_runlog_recon(aim_runlog *l, int64_t step, const float *out, int n, int C, int H, int S,
                     double loss, aim_err *e)
{
    if (!l)
        return 0;
    char *dir = aim_dirname(l->path);
    char *path = aim_xasprintf("%s/recon.npy", dir);
    free(dir);
    aim_array a = {.dtype = AIM_F32, .ndim = 5, .shape = {3, n, C, H, H}, .data = (void *)out};
    int rc = aim_npy_write(path, &a, e);
    free(path);
    if (rc != 0)
        return -1;
    aim_runlog_begin(l, step, "recon");
    aim_runlog_num(l, "loss", loss);
    aim_runlog_num(l, "prefix", S);
    aim_runlog_num(l, "images", n);
    return aim_runlog_end(l);
}

/* ------------------------------------------------------------ run.json */

void aim_json_job(FILE *f, const char *kind, const char *weights)
{
    fprintf(f, "{\"kind\":");
    aim_json_string(f, kind);
    fprintf(f, ",\"weights\":");
    aim_json_string(f, weights);
}

void aim_json_precision(FILE *f, aim_precision p)
{
    fprintf(f, ",\"precision\":\"%s\",\"gemm\":\"%s\"", aim_precision_name(p),
            aim_gemm_label(p));
}

void aim_json_config(FILE *f, const aim_config *c)
{
    fprintf(f, "\"image\":%d,\"channels\":%d,\"patch\":%d,\"width\":%d,\"depth\":%d,\"heads\":%d",
            c->image, c->channels, c->patch, c->width, c->depth, c->heads);
}
