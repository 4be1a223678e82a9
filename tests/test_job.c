/*
 * test_job.c - the job layer's tables and setup (aim/job.h): every table is
 * well formed (defaults in range, names unique per door), values are checked
 * on the way in, and the setup turns options into the job the library runs
 * (the default experiment's shape, epochs to steps, probe epochs, LoRA's
 * alpha and blocks).
 */
#include "config.h"

#include <string.h>

#include "aim/bf16.h"
#include "aim/job.h"
#include "tap.h"

static void check_table(const char *job)
{
    const aim_opt *t = aim_job_options(job);
    int bad_range = 0, dup = 0, no_help = 0, n = 0;
    for (const aim_opt *o = t; o->name; o++, n++) {
        if ((o->type == AIM_OPT_INT || o->type == AIM_OPT_NUM) &&
            !(o->def >= o->lo && o->def <= o->hi))
            bad_range++, tap_diag("%s.%s: default %g outside [%g, %g]", job, o->name, o->def,
                                  o->lo, o->hi);
        if (!o->help || !*o->help)
            no_help++;
        for (const aim_opt *p = t; p < o; p++)
            if ((p->where & o->where) && !strcmp(p->name, o->name))
                dup++, tap_diag("%s: '%s' twice for one door", job, o->name);
        if (o->type == AIM_OPT_CHOICE && o->sdef && !strstr(o->arg, o->sdef))
            bad_range++, tap_diag("%s.%s: default %s not a choice", job, o->name, o->sdef);
    }
    tap_ok(n > 5 && !bad_range && !dup && !no_help,
           "%s: %d options, defaults in range, one name per door, each with help", job, n);
}

int main(void)
{
    aim_err e;
    for (int i = 0; aim_job_names[i]; i++)
        check_table(aim_job_names[i]);
    tap_ok(aim_job_options("train") == aim_pretrain_options && !aim_job_options("fly"),
           "jobs by name (train is pretrain's alias), NULL for an unknown one");

    /* values on the way in */
    aim_pretrain_spec s;
    aim_pretrain_spec_default(&s);
    tap_ok(s.epochs == 0 && s.budget == 0 && s.steps == 0 && !strcmp(s.precision, "auto") &&
               s.batch == 64 && s.lr == 1e-3 && !s.crop && s.flip &&
               s.val_every == 100 && s.probe_every == 300 && s.ckpt_minutes == 10 &&
               !strcmp(s.preset, "tiny") && !strcmp(s.on_nan, "skip") && !s.out,
           "pretrain defaults: the default experiment's recipe");
    const aim_opt *lr = aim_opts_find(aim_pretrain_options, "lr", AIM_OPT_CLI);
    const aim_opt *le = aim_opts_find(aim_pretrain_options, "log-every", AIM_OPT_LUA);
    tap_ok(lr && le && !strcmp(le->name, "log_every") &&
               !aim_opts_find(aim_pretrain_options, "val", AIM_OPT_CLI) &&
               aim_opts_find(aim_pretrain_options, "val", AIM_OPT_LUA),
           "find: '-' and '_' alike, each door sees its own options");
    tap_ok(aim_opt_set_text(lr, &s, "2e-3", &e) == 0 && s.lr == 2e-3, "lr 2e-3 from text");
    tap_ok(aim_opt_set_text(lr, &s, "20", &e) != 0 &&
               tap_contains(e.msg, "must be in [1e-12, 10]") && s.lr == 2e-3,
           "lr 20 is refused, the value kept: %s", e.msg);
    tap_ok(aim_opt_set_text(lr, &s, "fast", &e) != 0 && tap_contains(e.msg, "expects a number"),
           "a word for a number: %s", e.msg);
    const aim_opt *batch = aim_opts_find(aim_pretrain_options, "batch", AIM_OPT_CLI);
    tap_ok(aim_opt_set_num(batch, &s, 2.5, &e) != 0 && tap_contains(e.msg, "integer") &&
               aim_opt_set_int(batch, &s, 0, &e) != 0 && tap_contains(e.msg, "1..65536"),
           "batch: 2.5 and 0 refused: %s", e.msg);
    const aim_opt *nan = aim_opts_find(aim_pretrain_options, "on_nan", AIM_OPT_LUA);
    tap_ok(aim_opt_set_str(nan, &s, "ignore", &e) != 0 && tap_contains(e.msg, "skip|stop") &&
               aim_opt_set_str(nan, &s, "stop", &e) == 0 && !strcmp(s.on_nan, "stop"),
           "a choice: only its words: %s", e.msg);
    const aim_opt *flip = aim_opts_find(aim_pretrain_options, "flip", AIM_OPT_CLI);
    tap_ok(aim_opt_set_text(flip, &s, "no", &e) == 0 && !s.flip &&
               aim_opt_set_text(flip, &s, "maybe", &e) != 0,
           "a boolean from text: yes/no, true/false, 1/0 only");
    const aim_opt *out = aim_opts_find(aim_pretrain_options, "out", AIM_OPT_LUA);
    tap_ok(aim_opt_set_str(out, &s, "", &e) == 0 && s.out == NULL, "\"\" reads as unset");
    tap_ok(!strcmp(aim_opts_suggest(aim_pretrain_options, "eopchs", AIM_OPT_CLI), "epochs") &&
               !aim_opts_suggest(aim_pretrain_options, "zzzzzz", AIM_OPT_CLI),
           "suggestions: the nearest name, none when far");
    char buf[256];
    aim_opt_flag(flip, buf, sizeof buf);
    tap_ok(!strcmp(buf, "--no-flip"), "a true-by-default option shows as --no-flip");
    aim_opt_describe(aim_opts_find(aim_pretrain_options, "warmup", AIM_OPT_CLI), buf, sizeof buf);
    tap_ok(!tap_contains(buf, "(default"), "help that says its default once: %s", buf);

    aim_blocks b;
    tap_ok(aim_blocks_parse("3,4", &b, &e) == 0 && b.n == 2 && b.b[0] == 3 && b.b[1] == 4,
           "blocks 3,4");
    tap_ok(aim_blocks_parse("3,", &b, &e) != 0 && aim_blocks_parse("0", &b, &e) != 0 &&
               aim_blocks_parse("", &b, &e) != 0 && aim_blocks_parse("a", &b, &e) != 0,
           "blocks: a trailing comma, 0, nothing, a word are refused");
    aim_blocks_parse("2,7", &b, &e);
    tap_ok(aim_blocks_check(&b, 6, &e) != 0 && tap_contains(e.msg, "block 7 is not in 1..6"),
           "blocks beyond the depth: %s", e.msg);

    /* setup: the model shape of the default experiment */
    aim_config c;
    aim_pretrain_spec_default(&s);
    tap_ok(aim_pretrain_spec_config(&s, &c, &e) == 0 && c.image == 30 && c.patch == 6 &&
               c.width == 192 && c.depth == 6,
           "no shape options: tiny at 30x30 with patch 6");
    s.patch = 7;
    tap_ok(aim_pretrain_spec_config(&s, &c, &e) == 0 && c.image == 28 && c.patch == 7,
           "patch=7 alone: tiny's own 28x28");
    aim_pretrain_spec_default(&s);
    s.preset = "micro";
    tap_ok(aim_pretrain_spec_config(&s, &c, &e) == 0 && c.image == 8 && c.channels == 3,
           "another preset keeps its shape");
    s.patch = 3;
    tap_ok(aim_pretrain_spec_config(&s, &c, &e) != 0, "a patch that does not divide: %s", e.msg);

    /* the run's length and precision auto, resolved for the model's shape */
    aim_config tiny, micro;
    aim_pretrain_spec_default(&s);
    aim_pretrain_spec_config(&s, &tiny, &e);
    s.preset = "micro";
    aim_pretrain_spec_config(&s, &micro, &e);
    aim_config wide = tiny;
    wide.width = 256;
    tap_ok(aim_config_is_default_experiment(&tiny) && !aim_config_is_default_experiment(&micro) &&
               !aim_config_is_default_experiment(&wide),
           "the default experiment's shape: tiny 30x30 / 6 only");
    aim_pretrain_spec_default(&s);
    char note[400] = "";
    aim_pretrain_spec_resolve(&s, &tiny, note, sizeof note);
    const int bf16 = aim_bf16_check("", &e) == 0;
    tap_ok(s.budget == AIM_DEFAULT_IMAGES && s.epochs == 0 &&
               aim_pretrain_spec_steps(&s, 60000) == (AIM_DEFAULT_IMAGES + 63) / 64 &&
               !strcmp(s.precision, bf16 ? "bf16" : "fp32") && (bf16 ? !note[0] : !!note[0]),
           "default experiment: %d images (%lld steps of 64), precision %s%s%s",
           AIM_DEFAULT_IMAGES, (long long)aim_pretrain_spec_steps(&s, 60000), s.precision,
           note[0] ? "; " : "", note);
    aim_pretrain_spec_default(&s);
    aim_pretrain_spec_resolve(&s, &micro, note, sizeof note);
    tap_ok(s.epochs == AIM_DEFAULT_EPOCHS && s.budget == 0 && !strcmp(s.precision, "fp32") &&
               aim_pretrain_spec_steps(&s, 1000) == 79,
           "another model: 5 epochs (79 steps of 64 over 1000 images), fp32");
    aim_pretrain_spec_default(&s);
    s.epochs = 2;
    s.budget = 1000;
    s.precision = "fp32";
    aim_pretrain_spec_resolve(&s, &tiny, NULL, 0);
    tap_ok(aim_pretrain_spec_steps(&s, 500) == 16 && !strcmp(s.precision, "fp32"),
           "epochs win over budget; a stated precision stays");
    s.epochs = 0;
    tap_ok(aim_pretrain_spec_steps(&s, 500) == 16 && (s.steps = 7) &&
               aim_pretrain_spec_steps(&s, 500) == 7 && (s.steps = 0, s.budget = 1) &&
               aim_pretrain_spec_steps(&s, 500) == 1,
           "budget 1000: 16 steps of 64; steps win over both; budget 1: one step");

    /* probe and LoRA jobs from their specs */
    aim_probe_spec ps;
    aim_probe_job pj;
    aim_probe_spec_default(&ps);
    tap_ok(aim_probe_spec_job(&ps, 6, &pj, &e) == 0 && pj.train.epochs == AIM_PROBE_EPOCHS &&
               pj.nsets == 0 && pj.kind == AIM_PROBE_ATTENTIVE && pj.train.batch == 256,
           "probe: 30 epochs on the middle blocks, attentive, batch 256");
    ps.sweep = 1;
    tap_ok(aim_probe_spec_job(&ps, 6, &pj, &e) == 0 && pj.nsets == 6 &&
               pj.train.epochs == AIM_PROBE_SWEEP_EPOCHS,
           "probe sweep: 6 sets of 15 epochs");
    aim_blocks_parse("3,4", &ps.blocks, &e);
    tap_ok(aim_probe_spec_job(&ps, 6, &pj, &e) != 0 && tap_contains(e.msg, "exclude"),
           "blocks and sweep together: %s", e.msg);
    aim_lora_spec ls;
    aim_lora_job lj;
    aim_lora_spec_default(&ls);
    aim_config_preset("tiny", &c, &e);
    tap_ok(aim_lora_spec_job(&ls, &c, &lj, &e) == 0 && lj.rank == 8 && lj.alpha == 8 &&
               lj.epochs == 4 && lj.nblocks == 0,
           "lora: rank 8, alpha = rank, 4 epochs, blocks resolved later");
    ls.rank = 500;
    tap_ok(aim_lora_spec_job(&ls, &c, &lj, &e) != 0 && tap_contains(e.msg, "trunk width 192"),
           "a rank above the width: %s", e.msg);
    return tap_done();
}
