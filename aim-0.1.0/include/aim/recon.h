/*
 * aim/recon.h - reconstructions: what a model predicts for each patch of an
 * image, as images, and the grid of them as a PNG (for aim.reconstruct, the
 * TUI's reconstruction panel and TensorBoard image summaries).
 *
 * For images x [B,C,H,W] normalised as the model sees them and a prefix S,
 * one forward pass gives, for every patch j >= S, the prediction made from
 * patches 0..j-1 (row j-1 of aim_model_predictions). Predictions live in
 * normalised-pixel space (the loss normalises each target patch by its own
 * mean and unbiased std), so each is mapped back with the TARGET patch's
 * statistics, then the channel normalisation is undone with mean/sd.
 *
 * A grid shows one image per row: input | prediction | target.
 */
#ifndef AIM_RECON_H
#define AIM_RECON_H

#include <stddef.h>
#include <stdint.h>

#include "aim/core.h"
#include "aim/data.h"
#include "aim/model.h"
#include "aim/tfevents.h"

/* Most images in a TensorBoard reconstruction grid (aim_pretrain_opts
 * .recon_images). */
#define AIM_RECON_IMAGES_MAX 8

/* For B images x [B,C,H,W] (normalised as m sees them) and prefix S in
 * 1..N-1: input, pred, target [B,C,H,W] in [0,1]:
 *   input   the image with patches >= S greyed out (0.5): what is given
 *   pred    patches < S from the image, patches >= S predicted
 *   target  the image
 * un-normalised with mean[c] / sd[c] (NULL: the model's own statistics, or
 * 0 / 1 where it has none, i.e. x is then taken as x/255 already);
 * *loss = the AIM loss at S (NaN for B = 0). One forward per 64 images; the
 * model's saved activations are overwritten. -1 with a message on a bad S
 * or when the activations cannot be allocated. */
int aim_model_reconstruct(aim_model *m, const float *x, int B, int S, const float *mean,
                          const float *sd, float *input, float *pred, float *target,
                          double *loss, aim_err *e);

/* Up to n images of ds to reconstruct, the same on every call: one per
 * class in class order where the first 2000 images allow, then the first
 * others; normalised with c's statistics into *rx (malloc'd, [k, C, H, W]).
 * Returns k; 0 with *rx NULL when ds's images are not c's size. */
int aim_recon_pick(const aim_dataset *ds, const aim_config *c, int n, float **rx);

/* The 3B cells of a grid as 8-bit planar images [3B, C, H, W]: cell 3b is
 * image b's input, 3b+1 its prediction, 3b+2 its target; round(v * 255)
 * (values are in [0,1]). */
void aim_recon_cells(const float *input, const float *pred, const float *target, int B, int C,
                     int H, uint8_t *cells);

/* The upscaling a grid of H-pixel images gets in TensorBoard: 4 up to 32
 * pixels, 2 up to 64, else 1 (a 28-pixel image is shown 112 pixels wide). */
int aim_recon_scale(int H);

/* The grid as an in-memory PNG: B rows of 3 cells (input | prediction |
 * target) at full resolution times `scale` (nearest neighbour), with
 * AIM_RECON_BORDER white pixels between and around the cells; grey for
 * C = 1, RGB for C = 3 (other channel counts are an error). Width
 * 3 H scale + 4 border, height B H scale + (B + 1) border. *png is
 * malloc'd (*len bytes); *width / *height get its size (may be NULL). */
#define AIM_RECON_BORDER 2
int aim_recon_png(const float *input, const float *pred, const float *target, int B, int C,
                  int H, int scale, uint8_t **png, size_t *len, int *width, int *height,
                  aim_err *e);

/* aim_recon_png at aim_recon_scale(H), written to w as an image summary
 * `tag` at `step` (wall time: now). -1 with a message if the PNG cannot be
 * made or the write fails. */
int aim_recon_summary(aim_tfevents *w, const char *tag, int64_t step, const float *input,
                      const float *pred, const float *target, int B, int C, int H, aim_err *e);

#endif
