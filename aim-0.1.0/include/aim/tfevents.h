/*
 * aim/tfevents.h - a TensorBoard event-file writer in plain C: TFRecord
 * framing (u64 length, masked CRC32C of the length, data, masked CRC32C of
 * the data) around hand-encoded tensorflow.Event protobuf messages holding
 * scalar and PNG image summaries. A run folder written by aim opens in
 * TensorBoard as it is.
 */
#ifndef AIM_TFEVENTS_H
#define AIM_TFEVENTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "aim/core.h"

/* CRC-32C (Castagnoli), and TFRecord's masking of it. */
uint32_t aim_crc32c(uint32_t crc, const void *data, size_t len);
uint32_t aim_crc32c_mask(uint32_t crc);

typedef struct aim_tfevents aim_tfevents;

/* Create dir/events.out.tfevents.<seconds>.<host> and write the header
 * event (file_version "brain.Event:2"). */
aim_tfevents *aim_tfevents_open(const char *dir, aim_err *e);
/* Append to an existing event file (resume), or create it if missing. */
aim_tfevents *aim_tfevents_open_path(const char *path, aim_err *e);
/* A new event file on an open stream (header written first): for writing
 * through aim_write_atomic. name is for messages; close flushes f but leaves
 * closing it to the caller. */
aim_tfevents *aim_tfevents_open_stream(FILE *f, const char *name);
const char *aim_tfevents_path(const aim_tfevents *w);
int aim_tfevents_scalar(aim_tfevents *w, const char *tag, int64_t step, double wall_time,
                        float value);
/* png: an encoded PNG file image of width x height with `channels` (1 gray,
 * 3 RGB, 4 RGBA) */
int aim_tfevents_image(aim_tfevents *w, const char *tag, int64_t step, double wall_time,
                       int height, int width, int channels, const void *png, size_t png_len);
int aim_tfevents_flush(aim_tfevents *w);
/* Returns -1 if any write failed since opening. */
int aim_tfevents_close(aim_tfevents *w);

/* Low level, exposed for tests: encode one record (framing) of `len` bytes
 * into out (len + 16 bytes). */
void aim_tfrecord_frame(uint8_t *out, const void *data, size_t len);
/* Encode an Event with a scalar summary into buf (returns its length;
 * buf must hold at least 64 + strlen(tag) bytes). */
size_t aim_tfevent_encode_scalar(uint8_t *buf, const char *tag, int64_t step, double wall_time,
                                 float value);

#endif
