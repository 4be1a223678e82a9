/*
 * test_checkpoint.c - checkpoints: a round trip of weights, moments and
 * state; exact resume through the library (losses and weights bit-identical
 * to a straight run); corruption detected; a failing write reported while
 * training continues and the previous checkpoint stays loadable; pruning.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "aim/io.h"
#include "aim/train.h"
#include "tap.h"

typedef struct log {
    float loss[128];
    int64_t step[128];
    int n;
    char msg[4][AIM_ERR_MAX + 256];
    int nmsg;
} log_t;

static int rec(void *ctx, const aim_step_info *s)
{
    log_t *l = ctx;
    if (l->n < 128) {
        l->loss[l->n] = s->loss;
        l->step[l->n++] = s->step;
    }
    return 0;
}

static void rec_msg(void *ctx, const char *m)
{
    log_t *l = ctx;
    if (strstr(m, "FAILED") && l->nmsg < 4)
        snprintf(l->msg[l->nmsg++], sizeof l->msg[0], "%s", m);
}

static int stop_at_13(void *ctx, const aim_step_info *s)
{
    rec(ctx, s);
    return s->step == 13;
}

static aim_config small_config(void)
{
    aim_config c;
    aim_err e;
    aim_config_preset("micro", &c, &e);
    c.channels = 1;
    c.image = 8;
    return c;
}

static void opts(aim_pretrain_opts *po, log_t *l, const char *dir)
{
    aim_pretrain_opts_default(po);
    po->steps = 30;
    po->batch = 8;
    po->lr = 3e-3f;
    po->on_step = rec;
    po->on_message = rec_msg;
    po->ctx = l;
    po->ckpt_dir = dir;
    po->ckpt_every = 5;
    po->keep_last = 2;
}

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

int main(void)
{
    aim_err e = {{0}};
    aim_config c = small_config();
    aim_synth_opts so = {.n = 200, .c = 1, .h = 8, .w = 8, .seed = 3};
    aim_dataset *ds = aim_data_synthetic(&so, &e);

    /* straight run of 30 steps */
    char *d1 = aim_xasprintf("%s/straight", tap_tmpdir());
    mkdir(d1, 0755);
    log_t a = {0};
    aim_pretrain_opts po;
    opts(&po, &a, d1);
    aim_model *m1 = aim_model_new(&c, 5, &e);
    aim_pretrain_result res;
    int rc = aim_pretrain(m1, ds, &po, &res, &e);
    tap_ok(rc == 0 && res.checkpoints_written == 6,
           "straight run writes a checkpoint every 5 steps (%d)", res.checkpoints_written);
    char *p30 = aim_xasprintf("%s/ckpt-30.safetensors", d1);
    char *p25 = aim_xasprintf("%s/ckpt-25.safetensors", d1);
    char *p20 = aim_xasprintf("%s/ckpt-20.safetensors", d1);
    tap_ok(file_exists(p30) && file_exists(p25) && !file_exists(p20), "only the newest 2 are kept");
    char *latest = aim_checkpoint_latest(d1, &e);
    tap_ok(latest && !strcmp(latest, p30), "latest checkpoint is ckpt-30");
    free(latest);

    /* round trip */
    aim_train_state st;
    aim_pretrain_opts lo;
    aim_st_file *meta = NULL;
    aim_model *mc = aim_checkpoint_load(p30, &st, &lo, &meta, &e);
    tap_ok(mc != NULL, "load ckpt-30: %s", mc ? "ok" : e.msg);
    if (mc) {
        aim_params *pa = aim_model_params(m1), *pb = aim_model_params(mc);
        tap_ok(!memcmp(pa->data, pb->data, pa->total * 4) && !memcmp(pa->m, pb->m, pa->total * 4) &&
                   !memcmp(pa->v, pb->v, pa->total * 4),
               "weights and both AdamW moments round-trip bit-exactly");
        tap_ok(st.step == 30 && st.data_position == 240 && lo.steps == 30 && lo.batch == 8 &&
                   lo.lr == 3e-3f && lo.warmup == 1 && lo.keep_last == 2,
               "state and recipe come back (step %lld, position %llu)", (long long)st.step,
               (unsigned long long)st.data_position);
        tap_ok(aim_st_meta(meta, "crc32") && strlen(aim_st_meta(meta, "crc32")) == 8,
               "the metadata carries a CRC32");
        aim_model_free(mc);
        aim_st_close(meta);
    }

    /* a run stopped at step 13, resumed from its newest checkpoint (10) */
    char *d2 = aim_xasprintf("%s/resumed", tap_tmpdir());
    mkdir(d2, 0755);
    log_t b = {0};
    opts(&po, &b, d2);
    po.on_step = stop_at_13;
    aim_model *m2 = aim_model_new(&c, 5, &e);
    aim_pretrain(m2, ds, &po, &res, &e);
    tap_ok(res.stopped && res.steps_done == 13, "the interrupted run stops at step 13");
    aim_model_free(m2);
    char *p13 = aim_xasprintf("%s/ckpt-13.safetensors", d2);
    tap_ok(file_exists(p13), "stopping writes a checkpoint at the step reached");
    remove(p13); /* pretend the process died: resume from ckpt-10 */
    latest = aim_checkpoint_latest(d2, &e);
    aim_model *m3 = aim_checkpoint_load(latest, &st, &lo, &meta, &e);
    tap_ok(m3 && st.step == 10, "resume from %s", latest);
    free(latest);
    lo.on_step = rec;
    lo.on_message = rec_msg;
    lo.ctx = &b;
    lo.ckpt_dir = d2;
    lo.resume = &st;
    b.n = 10; /* the losses of steps 11.. are recomputed */
    tap_ok(m3 && aim_pretrain(m3, ds, &lo, &res, &e) == 0 && res.steps_done == 30,
           "the resumed run finishes");
    tap_ok(b.n == 30 && !memcmp(a.loss, b.loss, 30 * sizeof(float)),
           "the loss sequence is bit-identical to the straight run");
    tap_ok(m3 && !memcmp(aim_model_params(m1)->data, aim_model_params(m3)->data,
                         aim_model_params(m1)->total * 4),
           "the final weights are bit-identical to the straight run");
    aim_model_free(m3);
    aim_st_close(meta);

    /* corruption */
    uint8_t *buf;
    size_t len;
    aim_read_file(p30, 1 << 26, &buf, &len, &e);
    const char *bad = tap_path("bad.safetensors");
    buf[len - 100] ^= 0x10; /* a bit in the data section */
    tap_write(bad, buf, len);
    tap_ok(aim_checkpoint_load(bad, &st, &lo, &meta, &e) == NULL && tap_contains(e.msg, "checksum"),
           "a flipped bit in the data is detected: %s", e.msg);
    buf[len - 100] ^= 0x10;
    char *crc = memmem(buf, len, "\"crc32\":\"", 9);
    char orig = crc[9];
    crc[9] = orig == '0' ? '1' : '0';
    tap_write(bad, buf, len);
    tap_ok(aim_checkpoint_load(bad, &st, &lo, &meta, &e) == NULL && tap_contains(e.msg, "checksum"),
           "a changed CRC in the header is detected: %s", e.msg);
    crc[9] = orig;
    char *stp = memmem(buf, len, "\"step\":\"30\"", 11);
    stp[8] = '9'; /* step 90 > total 30 */
    tap_write(bad, buf, len);
    tap_ok(aim_checkpoint_load(bad, &st, &lo, &meta, &e) == NULL &&
               tap_contains(e.msg, "header checksum"),
           "a changed value in the metadata is detected: %s", e.msg);
    stp[8] = '3';
    /* flip every byte of the header in turn: each one must be caught */
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | buf[i];
    int undetected = 0;
    for (uint64_t i = 0; i < 8 + hlen; i++) {
        buf[i] ^= 0x04;
        tap_write(bad, buf, len);
        aim_model *mb = aim_checkpoint_load(bad, &st, &lo, &meta, &e);
        if (mb) {
            undetected++;
            aim_model_free(mb);
            aim_st_close(meta);
        }
        buf[i] ^= 0x04;
    }
    tap_ok(undetected == 0, "each of the %llu header bytes flipped is detected (%d missed)",
           (unsigned long long)(8 + hlen), undetected);
    tap_write(bad, buf, len / 2);
    tap_ok(aim_checkpoint_load(bad, &st, &lo, &meta, &e) == NULL && tap_contains(e.msg, "bad.safetensors"),
           "a truncated checkpoint is refused: %s", e.msg);
    free(buf);
    aim_model_save(m1, tap_path("weights.safetensors"), &e);
    tap_ok(aim_checkpoint_load(tap_path("weights.safetensors"), &st, &lo, &meta, &e) == NULL &&
               tap_contains(e.msg, "not an aim checkpoint"),
           "plain weights are not a checkpoint: %s", e.msg);

    /* a failing write: a folder sits where ckpt-10 should go */
    char *d3 = aim_xasprintf("%s/failing", tap_tmpdir());
    mkdir(d3, 0755);
    char *blocker = aim_xasprintf("%s/ckpt-10.safetensors", d3);
    mkdir(blocker, 0755);
    log_t f = {0};
    opts(&po, &f, d3);
    po.steps = 12;
    aim_model *m4 = aim_model_new(&c, 5, &e);
    rc = aim_pretrain(m4, ds, &po, &res, &e);
    tap_ok(rc == 0 && res.steps_done == 12,
           "training goes on when a checkpoint cannot be written");
    tap_ok(res.checkpoint_failures == 1 && f.nmsg == 1 && tap_contains(f.msg[0], "ckpt-10"),
           "the failure is reported: %s", f.msg[0]);
    char *p5 = aim_xasprintf("%s/ckpt-5.safetensors", d3);
    aim_model *m5 = aim_checkpoint_load(p5, &st, &lo, &meta, &e);
    tap_ok(m5 && st.step == 5, "the previous checkpoint stays loadable");
    aim_model_free(m5);
    aim_st_close(meta);

    free(p5);
    free(blocker);
    free(d3);
    aim_model_free(m4);
    free(p13);
    free(p20);
    free(p25);
    free(p30);
    free(d1);
    free(d2);
    aim_model_free(m1);
    aim_dataset_free(ds);
    /* pruning: temporaries of a killed writer go; this process's own and
     * those of another live process (a second job writing into the folder)
     * stay */
    {
        char dir[600], mine[700], live[700], cmd[1400];
        snprintf(dir, sizeof dir, "%s", tap_path("prune"));
        mkdir(dir, 0700);
        pid_t child = fork(); /* a process that has ended: its PID is free */
        if (child == 0)
            _exit(0);
        waitpid(child, NULL, 0);
        char dead1[64], dead2[64], dead3[64], dead4[64];
        snprintf(dead1, sizeof dead1, "ckpt-5.safetensors.tmp.%ld", (long)child);
        snprintf(dead2, sizeof dead2, "model.safetensors.tmp.%ld.0badf00d", (long)child);
        snprintf(dead3, sizeof dead3, "run.json.tmp.%ld.1234abcd", (long)child);
        snprintf(dead4, sizeof dead4, "recon.npy.tmp.%ld.00000000", (long)child);
        /* the first five go; the last three are not temporaries */
        const char *names[] = {"best.safetensors.tmp.999999999", dead1, dead2, dead3, dead4,
                               "notes.txt", "notes.tmp.txt", "a.tmp.12.xyz"};
        for (int i = 0; i < 8; i++) {
            snprintf(cmd, sizeof cmd, "%s/%s", dir, names[i]);
            tap_write(cmd, "x", 1);
        }
        snprintf(mine, sizeof mine, "%s/best.safetensors.tmp.%ld", dir, (long)getpid());
        tap_write(mine, "x", 1);
        snprintf(live, sizeof live, "%s/ckpt-9.safetensors.tmp.%ld.12345678", dir,
                 (long)getppid());
        tap_write(live, "x", 1);
        aim_checkpoint_prune(dir, 3);
        struct stat sb;
        int gone = 1;
        for (int i = 0; i < 8; i++) {
            snprintf(cmd, sizeof cmd, "%s/%s", dir, names[i]);
            gone &= (stat(cmd, &sb) != 0) == (i < 5);
        }
        tap_ok(gone && stat(mine, &sb) == 0,
               "prune removes the temporaries a killed writer left (checkpoints, best, model, "
               "run.json, recon.npy), keeps this process's own and other files");
        tap_ok(stat(live, &sb) == 0,
               "prune keeps a temporary another live process is writing (the parent's PID)");
    }
    return tap_done();
}
