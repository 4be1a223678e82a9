/*
 * aim/runlog.h - a run folder's event log: every event of a job (a
 * pretraining step, a validation, a probe epoch, a LoRA epoch ...) goes to
 * the JSON Lines log (metrics.jsonl, appended to) as one flat object
 * {"run", "step", "kind", "wall", values...} and, as scalars, to the
 * TensorBoard event file beside it (events.out.tfevents.aim) under the tags
 * "<kind>/<key>" and, for arrays, "<kind>/<key>_block<i>" - the names
 * aim_metrics_read gives the same values. The job's description goes to
 * run.json in the same folder.
 *
 * Every function accepts a NULL log and then does nothing, so a job without
 * a run folder needs no special cases.
 */
#ifndef AIM_RUNLOG_H
#define AIM_RUNLOG_H

#include <stdint.h>
#include <stdio.h>

#include "aim/core.h"
#include "aim/json.h"
#include "aim/model.h"
#include "aim/tfevents.h"

typedef struct aim_runlog aim_runlog;

/* Open metrics_path for appending and the event file beside it; run is the
 * "run" field of every line. resume_step >= 0 continues a run: the lines
 * logged after that step (and a partial last line) are dropped first and
 * the event file is rebuilt from what is left. NULL with a message naming
 * the file. */
aim_runlog *aim_runlog_open(const char *metrics_path, const char *run, int64_t resume_step,
                            aim_err *e);
/* On resume, lines of the log that are not metrics objects (garbage, a
 * torn write) are dropped rather than fail every later resume; this says
 * so, naming the file, for the caller to show ("" when nothing was dropped,
 * and for a NULL log). */
const char *aim_runlog_warning(const aim_runlog *l);
/* A run folder for a job: create dir (and its parents) if needed and open
 * dir/metrics.jsonl, run = the folder's name. A dir that cannot be a folder
 * (under a regular file, say) is an error naming it, and so is a pretraining
 * run's folder (its run.json, which has no "kind", is never replaced); a
 * job's folder is appended to. */
aim_runlog *aim_runlog_open_dir(const char *dir, aim_err *e);
/* The same for a job on ranks (dist, NULL = one process; aim/dist.h): rank 0
 * opens the folder and gets its log in *log, the others NULL; when rank 0
 * cannot, every rank returns -1 (rank 0 with the reason). */
struct aim_dist;
int aim_runlog_open_lead(const char *dir, const struct aim_dist *dist, aim_runlog **log,
                         aim_err *e);
/* Write dir/run.json atomically with fn (the run folder of aim_runlog_open_dir). */
int aim_runlog_write_info(aim_runlog *l, aim_write_fn fn, void *ctx, aim_err *e);

/* One event: begin, its values, end. Non-finite numbers are JSON null and
 * no scalar. end returns -1 when the log has had a write error. */
void aim_runlog_begin(aim_runlog *l, int64_t step, const char *kind);
void aim_runlog_num(aim_runlog *l, const char *key, double v);
void aim_runlog_array(aim_runlog *l, const char *key, const float *v, int n);
int aim_runlog_end(aim_runlog *l);

/* The event file, for images (NULL for a NULL log). */
aim_tfevents *aim_runlog_events(aim_runlog *l);
int aim_runlog_flush(aim_runlog *l);
/* Close both files; -1 with a message if any write failed. */
int aim_runlog_close(aim_runlog *l, aim_err *e);
/* The writer of a run holds an exclusive lock (flock) on its metrics log
 * from open to close; the system drops it when the process ends, killed
 * included. 1: a process holds it now, 0: none (or no log), -1: cannot
 * tell (locks unsupported). Opening a log another process writes fails. */
int aim_runlog_writer_active(const char *metrics_path);
/* Reconstructions for the run's followers (`aim tui RUN`): out = input |
 * prediction | target, each [n, C, H, H] in [0, 1], written atomically as
 * recon.npy beside the log (float32 [3, n, C, H, H]), then a "recon" line
 * (loss, prefix = S, images = n). 0 without a log. */
int aim_runlog_recon(aim_runlog *l, int64_t step, const float *out, int n, int C, int H, int S,
                     double loss, aim_err *e);

/* Helpers for a job's run.json: its start {"kind":KIND,"weights":WEIGHTS
 * (the rest follows, then "}"); the model's shape as "image":..,
 * "channels":..,"patch":..,"width":..,"depth":..,"heads":.. (the keys
 * `aim runs` reads). JSON strings: aim_json_string (aim/json.h). */
void aim_json_job(FILE *f, const char *kind, const char *weights);
void aim_json_config(FILE *f, const aim_config *c);
/* ,"precision":"fp32","gemm":"onednn": a job's precision and what ran its
 * GEMMs (aim_gemm_label) */
void aim_json_precision(FILE *f, aim_precision p);

#endif
