/*
 * cmd_loss.c - `aim loss WEIGHTS --images X.npy --prefix S`: the AIM loss of
 * given images with one prefix length for all, printed with %.9g as the last
 * line of stdout; optionally the predictions [B,N,P] as .npy. The contract
 * for outside tools that check this implementation against theirs.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aim/io.h"
#include "aim/model.h"
#include "cmd/cmd.h"
#include "cmd/common.h"
#include "cmd/opts.h"

static int loss_exec(int argc, char **argv);

const struct aim_cmd cmd_loss_entry = {
    .name = "loss",
    .usage = "WEIGHTS --images X.npy --prefix S [--predictions OUT.npy]",
    .summary = "AIM loss of given images (and optionally the predictions)",
    .help = "X.npy: float32 [B,C,H,W], already normalised (used as given). S: prefix length\n"
            "1..N-1 for every image. Prints the loss (%.9g) as the last line of stdout.\n"
            "OUT.npy: float32 [B,N,P]; row i is the head output at token i, predicting\n"
            "patch i+1 in normalised-pixel space (row N-1 is reported too).",
    .exec = loss_exec,
};

static int loss_exec(int argc, char **argv)
{
    const char *images = NULL, *preds = NULL;
    const char *precision = "fp32";
    int prefix = 0, threads = 0;
    cmd_opt opts[] = {
        {"images", OPT_STR, &images, "X.npy", "images, float32 [B,C,H,W], normalised"},
        {"prefix", OPT_INT, &prefix, "S", "prefix length 1..N-1, the same for every image"},
        {"predictions", OPT_STR, &preds, "OUT.npy", "also save the predictions [B,N,P]"},
        {"threads", OPT_INT, &threads, "T", "threads for OpenMP and OpenBLAS"},
        {"precision", OPT_STR, &precision, "fp32|bf16", AIM_PRECISION_HELP " (default fp32)"},
        {0},
    };
    if (cmd_help(&cmd_loss_entry, argc, argv, opts))
        return 0;
    char *pos[1];
    int npos;
    if (cmd_parse("loss", argc, argv, opts, pos, &npos, 1))
        return 1;
    if (npos != 1)
        return cmd_fail("loss: give the WEIGHTS file (try `aim loss --help`)");
    if (!images)
        return cmd_fail("loss: --images X.npy is required");
    cmd_set_threads(threads);
    aim_err e = {{0}};
    aim_precision prec;
    if (aim_precision_parse(precision, &prec, &e) != 0)
        return cmd_fail("loss: --%s", e.msg);
    aim_model *m = aim_model_load(pos[0], &e);
    if (!m)
        return cmd_fail("%s", e.msg);
    if (aim_model_set_precision(m, prec, &e) != 0) {
        aim_model_free(m);
        return cmd_fail("loss: %s", e.msg);
    }
    const aim_config *c = aim_model_config(m);
    int N = aim_config_tokens(c), P = aim_config_patch_dim(c);
    aim_array x = {0};
    int rc = 1;
    if (aim_npy_read(images, &x, &e) != 0) {
        cmd_fail("%s", e.msg);
        goto done;
    }
    if (x.dtype != AIM_F32 || x.ndim != 4 || x.shape[0] < 1 || x.shape[1] != c->channels ||
        x.shape[2] != c->image || x.shape[3] != c->image) {
        char shape[128] = "";
        for (int i = 0; i < x.ndim; i++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%lld", i ? "," : "",
                     (long long)x.shape[i]);
        cmd_fail("%s: expected float32 [B,%d,%d,%d] images, got %s [%s]", images, c->channels,
                 c->image, c->image, aim_dtype_name(x.dtype), shape);
        goto done;
    }
    if (prefix < 1 || prefix > N - 1) {
        cmd_fail("loss: --prefix must be in 1..%d for %d tokens (got %d)", N - 1, N, prefix);
        goto done;
    }
    int64_t B = x.shape[0];
    size_t img = (size_t)c->channels * c->image * c->image;
    aim_array out = {.dtype = AIM_F32, .ndim = 3, .shape = {B, N, P}};
    if (preds)
        out.data = aim_xmalloc((size_t)B * N * P * sizeof(float));
    /* chunks bound the activation memory; every image has N - S targets, so
     * the mean over the batch is the image-weighted mean of chunk losses */
    int chunk = 128;
    int32_t *pre = aim_xmalloc((size_t)chunk * sizeof *pre);
    for (int i = 0; i < chunk; i++)
        pre[i] = prefix;
    double sum = 0;
    for (int64_t b0 = 0; b0 < B; b0 += chunk) {
        int nb = (int)(B - b0 < chunk ? B - b0 : chunk);
        float l = aim_model_loss(m, (const float *)x.data + (size_t)b0 * img, pre, nb);
        sum += (double)l * nb;
        if (preds)
            memcpy((float *)out.data + (size_t)b0 * N * P, aim_model_predictions(m),
                   (size_t)nb * N * P * sizeof(float));
    }
    free(pre);
    if (preds && aim_npy_write(preds, &out, &e) != 0) {
        cmd_fail("%s", e.msg);
        aim_array_free(&out);
        goto done;
    }
    aim_array_free(&out);
    printf("%.9g\n", sum / (double)B);
    rc = 0;
done:
    aim_array_free(&x);
    aim_model_free(m);
    return rc;
}
