/* SPDX-License-Identifier: Apache-2.0 */
/* Copyright contributors to everest-py */
/*
 * A simulated GPIO chip that behaves like the kernel's GPIO character device.
 *
 * This machine's kernel has no GPIO support at all (no gpio-sim, no gpio-mockup), so the twin is
 * ours: one chip is one regular file, memory-mapped by every process that uses it.  Consumers (the
 * drivers) request lines exclusively with a consumer name, read and drive them, and see edge events
 * with CLOCK_MONOTONIC timestamps on their inputs.  The simulator (the "outside world") sets the
 * level applied to each line (its pull), watches what the consumers drive, and reaps requests of
 * processes that died, which lets an output fall back to its pull exactly as the kernel does when
 * the request's file descriptor is closed.
 *
 * The file starts with a magic that names its layout version; simgpio_open refuses a file whose
 * magic, line count or size does not match, and keeps its own copy of the line count, so a file
 * changed behind its back cannot make it index outside the mapping.
 *
 * Levels in the shared file are physical; active-low is applied per request, as in the uAPI.
 * A process-shared robust mutex guards the file, so a process killed while holding it cannot
 * wedge the others.  Waiters sleep on futex words (no polling).
 */
#ifndef EVEREST_BSP_SIMGPIO_H
#define EVEREST_BSP_SIMGPIO_H

#include <stddef.h>
#include <stdint.h>

#define SIMGPIO_MAGIC 0x32504753u /* "SGP2": bumped whenever the file layout or its meaning changes */
#define SIMGPIO_MAX_LINES 64
#define SIMGPIO_NAME_LEN 32
#define SIMGPIO_RING 1024

/* request flags of a line */
#define SIMGPIO_INPUT 0x01u
#define SIMGPIO_OUTPUT 0x02u
#define SIMGPIO_ACTIVE_LOW 0x04u
#define SIMGPIO_EDGE_RISING 0x08u
#define SIMGPIO_EDGE_FALLING 0x10u

struct simgpio_chip; /* a process's mapping of one chip file */

struct simgpio_info {
    char name[SIMGPIO_NAME_LEN];
    char consumer[SIMGPIO_NAME_LEN];
    int32_t owner_pid; /* 0: free */
    uint32_t flags;
    uint32_t debounce_us;
    uint32_t pull;   /* physical level applied from outside */
    uint32_t driven; /* physical level driven by the consumer (outputs) */
    int32_t fault;   /* errno that writes to this line fail with (simgpio_set_fault); 0: none */
};

struct simgpio_event {
    uint64_t ts_ns; /* CLOCK_MONOTONIC */
    uint32_t line;
    uint32_t level; /* physical level after the change */
};

/* lifecycle; every int function returns >= 0 on success, -errno on failure */
int simgpio_create(const char *path, const char *name, const char *label, const char *const *line_names,
                   uint32_t nlines, struct simgpio_chip **out);
int simgpio_open(const char *path, struct simgpio_chip **out);
void simgpio_close(struct simgpio_chip *chip);
int simgpio_nlines(struct simgpio_chip *chip);
int simgpio_chip_name(struct simgpio_chip *chip, char *name, char *label); /* each SIMGPIO_NAME_LEN */
int simgpio_find(struct simgpio_chip *chip, const char *line_name);        /* offset or -ENOENT */
int simgpio_info(struct simgpio_chip *chip, uint32_t offset, struct simgpio_info *out);

/* consumer side: the uAPI twin */
int simgpio_request(struct simgpio_chip *chip, const uint32_t *offsets, const uint32_t *flags,
                    const uint32_t *debounce_us, const uint32_t *values, uint32_t n, const char *consumer);
int simgpio_release(struct simgpio_chip *chip, const uint32_t *offsets, uint32_t n);
int simgpio_get(struct simgpio_chip *chip, uint32_t offset); /* logical level */
int simgpio_set(struct simgpio_chip *chip, uint32_t offset, int value);
int simgpio_set_many(struct simgpio_chip *chip, const uint32_t *offsets, const int *values, uint32_t n);
uint64_t simgpio_input_head(struct simgpio_chip *chip);
int simgpio_wait_input(struct simgpio_chip *chip, uint64_t seen_head, int timeout_ms); /* 1 new, 0 timeout */
int simgpio_read_input(struct simgpio_chip *chip, uint64_t *cursor, struct simgpio_event *buf, int max);

/* simulator side: the world around the chip */
int simgpio_set_pull(struct simgpio_chip *chip, uint32_t offset, int level);
/* A broken line (an I/O expander that stops answering): while errno_value is not 0, simgpio_set and
 * simgpio_set_many return -errno_value for this line and leave its level as it was.  0 repairs it. */
int simgpio_set_fault(struct simgpio_chip *chip, uint32_t offset, int errno_value);
int simgpio_physical(struct simgpio_chip *chip, uint32_t offset);
uint64_t simgpio_output_head(struct simgpio_chip *chip);
int simgpio_wait_output(struct simgpio_chip *chip, uint64_t seen_head, int timeout_ms);
/* Up to max events after *cursor (the reader's own position, advanced here); returns how many.  The
 * rings keep the last SIMGPIO_RING events: a reader that fell further behind has lost the older ones,
 * and *cursor jumps over them, so (new *cursor - old *cursor - returned) events were lost.  The same
 * holds for simgpio_read_input. */
int simgpio_read_output(struct simgpio_chip *chip, uint64_t *cursor, struct simgpio_event *buf, int max);
int simgpio_reap(struct simgpio_chip *chip); /* releases lines of dead processes; returns how many */

uint64_t simgpio_now_ns(void);

#endif
