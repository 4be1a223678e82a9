/*
 * test_alloc.c - no file, config or recipe may size an allocation before it
 * is checked (issue 24, items 1, 6, 7): metadata-only weights and probe
 * files, configs too large for the machine or aim_mem_limit(), datasets over
 * the limit, .npy files whose header is bad, checkpoints with beta = 1 or
 * eps = 0, and non-finite weights, which no saver may write. Each case
 * checks the message (the file and the problem) and that the peak RSS stays
 * far below what the file's claims would cost.
 */
#include "config.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aim/data.h"
#include "aim/io.h"
#include "aim/model.h"
#include "aim/probe.h"
#include "aim/train.h"
#include "tap.h"

/* peak resident set of this process, MiB */
static double peak_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

/* A safetensors file with the given metadata (pairs) and one small tensor
 * (or none when tname is NULL). */
static void write_st(const char *path, const char *const *kv, int nkv, const char *tname,
                     int ndim, const int64_t *shape)
{
    float data[64] = {0}; /* the largest shape written: [1, 3, 4, 4] */
    aim_st_entry t = {.name = tname, .dtype = AIM_F32, .ndim = ndim, .data = data};
    for (int d = 0; d < ndim; d++)
        t.shape[d] = shape[d];
    aim_err e;
    if (aim_st_write(path, &t, tname ? 1 : 0, kv, nkv, &e) != 0)
        tap_diag("cannot write %s: %s", path, e.msg);
}

static void hostile_weights(void)
{
    aim_err e = {{0}};
    double before = peak_mib();
    /* 170 bytes whose metadata claims 1.6e12 parameters: aborted with
     * "out of memory allocating 10996526092288 bytes" */
    const char *huge[] = {"image", "32", "channels", "3", "patch", "4", "width", "16384",
                          "depth", "512", "heads", "8", "head_width", "64", "head_depth", "1"};
    const char *p1 = tap_path("huge.safetensors");
    write_st(p1, huge, 8, NULL, 0, NULL);
    aim_model *m = aim_model_load(p1, &e);
    tap_ok(!m && tap_contains(e.msg, p1) && tap_contains(e.msg, "is missing"),
           "metadata claiming width 16384, depth 512: %s", e.msg);
    aim_model_free(m);
    /* width 1024, depth 8: 933 MB of slabs before "tensor ... is missing" */
    const char *mid[] = {"image", "32", "channels", "3", "patch", "4", "width", "1024",
                         "depth", "8", "heads", "8", "head_width", "64", "head_depth", "1"};
    const char *p2 = tap_path("mid.safetensors");
    int64_t s1[1] = {4};
    write_st(p2, mid, 8, "trunk.post_trunk_norm.weight", 1, s1);
    m = aim_model_load(p2, &e);
    tap_ok(!m && tap_contains(e.msg, p2) &&
               tap_contains(e.msg, "preprocessor.patchifier.proj.weight\" is missing"),
           "metadata claiming width 1024, depth 8: %s", e.msg);
    aim_model_free(m);
    /* a tensor of the wrong shape is found before anything is allocated */
    const char *p2b = tap_path("shape.safetensors");
    int64_t s4[4] = {1, 3, 4, 4};
    write_st(p2b, mid, 8, "preprocessor.patchifier.proj.weight", 4, s4);
    m = aim_model_load(p2b, &e);
    tap_ok(!m && tap_contains(e.msg, p2b) && tap_contains(e.msg, "[1,3,4,4]") &&
               tap_contains(e.msg, "[1024,3,4,4]"),
           "a tensor of the wrong shape: %s", e.msg);
    aim_model_free(m);
    /* the probe loader: width 16384 and 100000 classes in 304 bytes reached
     * 12.8 GB before its shape error */
    const char *pk[] = {"image", "32", "channels", "3", "patch", "4", "width", "16384",
                        "depth", "2", "heads", "8", "head_width", "64", "head_depth", "1",
                        "classes", "100000", "probe_layers", "1", "probe_kind", "linear"};
    const char *p3 = tap_path("probe.safetensors");
    int64_t one[1] = {1};
    write_st(p3, pk, 11, "head.linear.weight", 1, one);
    int blocks[64], nb = 0;
    aim_probe *pr = aim_probe_load(p3, blocks, &nb, &e);
    tap_ok(!pr && tap_contains(e.msg, p3) && tap_contains(e.msg, "head.linear.weight") &&
               tap_contains(e.msg, "[100000,16384]"),
           "probe metadata claiming 100000 classes x 16384: %s", e.msg);
    aim_probe_free(pr);
    double grew = peak_mib() - before;
    tap_ok(grew < 100, "the hostile weight and probe files cost %.1f MiB of RSS (< 100)",
           grew);
}

static void config_limits(void)
{
    aim_err e = {{0}};
    aim_config c;
    aim_config_preset("tiny", &c, &e);
    c.width = 16384;
    c.depth = 512;
    c.heads = 8;
    tap_ok(aim_config_validate(&c, &e) == 0, "width 16384, depth 512 passes the shape checks");
    double before = peak_mib();
    aim_model *m = aim_model_new(&c, 0, &e);
    tap_ok(!m && tap_contains(e.msg, "the model needs") && tap_contains(e.msg, "GiB") &&
               tap_contains(e.msg, "allowed"),
           "... but is refused with its size: %s", e.msg);
    aim_model_free(m);
    /* a stated limit: the tiny preset needs ~26 MiB of slabs */
    aim_config_preset("tiny", &c, &e);
    aim_set_mem_limit((uint64_t)4 << 20);
    m = aim_model_new(&c, 0, &e);
    tap_ok(!m && tap_contains(e.msg, "more than the 4.0 MiB allowed"),
           "a model over aim_set_mem_limit: %s", e.msg);
    aim_model_free(m);
    /* a probe over the limit fails, the LoRA growth too */
    aim_probe *p = aim_probe_new(AIM_PROBE_LINEAR, 4, 4096, 1, 1000, 0, &e);
    tap_ok(!p && tap_contains(e.msg, "probe") && tap_contains(e.msg, "allowed"),
           "a probe over the limit: %s", e.msg);
    aim_probe_free(p);
    aim_set_mem_limit(0);
    aim_config_preset("micro", &c, &e);
    m = aim_model_new(&c, 0, &e);
    aim_set_mem_limit(aim_params_count(aim_model_params(m), 0) * 9);
    int rc = aim_model_lora_add(m, 8, 8, NULL, 0, 1, &e);
    aim_lora_info li;
    aim_model_lora_info(m, &li);
    tap_ok(rc == -1 && tap_contains(e.msg, "lora") && li.rank == 0 &&
               aim_params_find(aim_model_params(m), "trunk.blocks.0.attn.qkv.lora_A") < 0,
           "adapters over the limit leave the model as it was: %s", e.msg);
    aim_set_mem_limit(0);
    tap_ok(aim_model_lora_add(m, 8, 8, NULL, 0, 1, &e) == 0, "and fit without the limit");
    aim_model_free(m);
    /* activations: a batch over the limit is an error, not an abort */
    m = aim_model_new(&c, 0, &e);
    aim_set_mem_limit((uint64_t)1 << 20);
    tap_ok(aim_model_reserve(m, 4096, &e) == -1 && tap_contains(e.msg, "batch 4096") &&
               tap_contains(e.msg, "allowed"),
           "activations over the limit: %s", e.msg);
    aim_set_mem_limit(0);
    aim_model_free(m);
    tap_ok(peak_mib() - before < 100, "none of it allocated (%.1f MiB)", peak_mib() - before);
}

static void datasets(void)
{
    aim_err e = {{0}};
    aim_set_mem_limit((uint64_t)1 << 20);
    aim_synth_opts so = {.n = 10000, .c = 1, .h = 28, .w = 28, .nclasses = 10, .seed = 1};
    aim_dataset *ds = aim_data_synthetic(&so, &e);
    tap_ok(!ds && tap_contains(e.msg, "10000 images of 1x28x28") &&
               tap_contains(e.msg, "more than the 1.0 MiB allowed"),
           "a synthetic dataset over the limit: %s", e.msg);
    aim_dataset_free(ds);
    /* a PNG folder whose first image sets a size over the limit */
    char *dir = aim_xasprintf("%s/pngs", tap_tmpdir());
    char *cls = aim_xasprintf("%s/a", dir);
    mkdir(dir, 0755);
    mkdir(cls, 0755);
    int side = 1024;
    uint8_t *pix = calloc((size_t)side * side, 1);
    for (int i = 0; i < 3; i++) {
        char *f = aim_xasprintf("%s/%d.png", cls, i);
        aim_png_write(f, pix, side, side, 1, &e);
        free(f);
    }
    free(pix);
    ds = aim_data_open(dir, NULL, &e);
    tap_ok(!ds && tap_contains(e.msg, dir) && tap_contains(e.msg, "3 images of 1x1024x1024"),
           "a PNG folder over the limit: %s", e.msg);
    aim_dataset_free(ds);
    aim_set_mem_limit(0);
    ds = aim_data_open(dir, NULL, &e);
    tap_ok(ds && ds->n == 3 && ds->h == side, "the same folder loads without the limit");
    aim_dataset_free(ds);
    /* a caller's budget (the Lua console's aim.memory_limit): the images,
     * and each image decoded before its resize, are sized before decoding */
    aim_open_opts oo = {.height = 8, .width = 8, .max_bytes = (uint64_t)64 << 10};
    ds = aim_data_open(dir, &oo, &e);
    tap_ok(!ds && tap_contains(e.msg, "0.png: a 1024x1024 image takes 1.0 MiB to decode") &&
               tap_contains(e.msg, "more than the 65536 bytes allowed"),
           "a PNG too large to decode within max_bytes: %s", e.msg);
    aim_dataset_free(ds);
    oo = (aim_open_opts){.max_bytes = (uint64_t)1 << 20};
    ds = aim_data_open(dir, &oo, &e);
    tap_ok(!ds && tap_contains(e.msg, "3 images of 1x1024x1024 need 3.0 MiB, more than the "
                                      "1.0 MiB allowed"),
           "a PNG folder over max_bytes: %s", e.msg);
    aim_dataset_free(ds);
    oo.max_bytes = (uint64_t)8 << 20;
    ds = aim_data_open(dir, &oo, &e);
    tap_ok(ds && ds->n == 3, "and within it");
    aim_dataset_free(ds);
    free(cls);
    free(dir);
}

static void npy_sparse(void)
{
    /* a 512 MiB sparse file whose header is wrong: it was read whole
     * before the header was checked */
    const char *p = tap_path("sparse.npy");
    const char hdr[] = "\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran_order': False, "
                       "'shape': (3,), }";
    char buf[128];
    memset(buf, ' ', sizeof buf);
    memcpy(buf, hdr, sizeof hdr - 1);
    buf[127] = '\n';
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int ok = fd >= 0 && write(fd, buf, sizeof buf) == (ssize_t)sizeof buf &&
             ftruncate(fd, (off_t)512 << 20) == 0;
    if (fd >= 0)
        close(fd);
    if (!ok) {
        tap_skip("cannot make a sparse file here");
        return;
    }
    double before = peak_mib();
    aim_array a;
    aim_err e = {{0}};
    int rc = aim_npy_read(p, &a, &e);
    double grew = peak_mib() - before;
    tap_ok(rc == -1 && tap_contains(e.msg, p) && tap_contains(e.msg, "trailing bytes"),
           "a 512 MiB .npy whose header claims 12 bytes: %s", e.msg);
    tap_ok(grew < 64, "... refused before its data is read (%.1f MiB of RSS)", grew);
    unlink(p);
}

static void recipe(void)
{
    aim_err e = {{0}};
    aim_config c;
    aim_config_preset("micro", &c, &e);
    aim_model *m = aim_model_new(&c, 1, &e);
    aim_params_alloc_moments(aim_model_params(m));
    aim_train_state st = {.step = 1, .best_val = 1, .last_loss = 1};
    const struct {
        const char *what;
        float b1, b2, eps;
        const char *msg;
    } bad[] = {
        {"beta1 = 1", 1.0f, 0.95f, 1e-8f, "beta1 = 1 is not in [0, 1)"},
        {"beta2 = 1", 0.9f, 1.0f, 1e-8f, "beta2 = 1 is not in [0, 1)"},
        {"eps = 0", 0.9f, 0.95f, 0.0f, "eps = 0 is not in (0, 1]"},
    };
    for (int i = 0; i < 3; i++) {
        aim_pretrain_opts po;
        aim_pretrain_opts_default(&po);
        po.steps = 10;
        po.warmup = 1;
        po.adamw.beta1 = bad[i].b1;
        po.adamw.beta2 = bad[i].b2;
        po.adamw.eps = bad[i].eps;
        const char *p = tap_path("recipe.safetensors");
        /* the CRCs are easy to forge: a checkpoint written with the values */
        int w = aim_checkpoint_save(p, m, &po, &st, &e);
        aim_train_state s2;
        aim_pretrain_opts o2;
        aim_st_file *f = NULL;
        aim_model *m2 = w == 0 ? aim_checkpoint_load(p, &s2, &o2, &f, &e) : NULL;
        tap_ok(w == 0 && !m2 && tap_contains(e.msg, p) && tap_contains(e.msg, bad[i].msg),
               "a checkpoint with %s is refused: %s", bad[i].what, e.msg);
        aim_model_free(m2);
        aim_st_close(f);
        /* and a run is not started with it */
        aim_synth_opts so = {.n = 16, .c = 3, .h = 8, .w = 8, .nclasses = 2, .seed = 1};
        aim_dataset *ds = aim_data_synthetic(&so, &e);
        aim_pretrain_result res;
        po.batch = 4;
        po.steps = 2;
        tap_ok(aim_pretrain(m, ds, &po, &res, &e) == -1 && tap_contains(e.msg, bad[i].msg),
               "aim_pretrain refuses %s: %s", bad[i].what, e.msg);
        aim_dataset_free(ds);
    }
    aim_model_free(m);
}

static void nonfinite(void)
{
    aim_err e = {{0}};
    aim_config c;
    aim_config_preset("micro", &c, &e);
    aim_model *m = aim_model_new(&c, 1, &e);
    aim_params *p = aim_model_params(m);
    int i = aim_params_find(p, "trunk.blocks.1.mlp.fc2.weight");
    p->data[p->t[i].offset + 3] = NAN;
    const char *path = tap_path("nan.safetensors");
    unlink(path);
    tap_ok(aim_model_save(m, path, &e) == -1 && tap_contains(e.msg, path) &&
               tap_contains(e.msg, "trunk.blocks.1.mlp.fc2.weight") &&
               access(path, F_OK) != 0,
           "NaN weights are not written: %s", e.msg);
    p->data[p->t[i].offset + 3] = INFINITY;
    aim_params_alloc_moments(p);
    aim_pretrain_opts po;
    aim_pretrain_opts_default(&po);
    po.steps = 1;
    aim_train_state st = {0};
    tap_ok(aim_checkpoint_save(path, m, &po, &st, &e) == -1 &&
               tap_contains(e.msg, "NaN or infinite") && access(path, F_OK) != 0,
           "nor as a checkpoint: %s", e.msg);
    p->data[p->t[i].offset + 3] = 0;
    tap_ok(aim_model_save(m, path, &e) == 0, "finite weights are written");
    aim_model_free(m);
}

int main(void)
{
    hostile_weights();
    config_limits();
    datasets();
    npy_sparse();
    recipe();
    nonfinite();
    return tap_done();
}
