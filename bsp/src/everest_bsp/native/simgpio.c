/* SPDX-License-Identifier: Apache-2.0 */
/* Copyright contributors to everest-py */
/* The simulated GPIO chip: a memory-mapped file shared by drivers and the board simulator. */
#define _GNU_SOURCE
#include "simgpio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct simgpio_line {
    char name[SIMGPIO_NAME_LEN];
    char consumer[SIMGPIO_NAME_LEN];
    int32_t owner_pid;
    uint32_t flags;
    uint32_t debounce_us;
    uint32_t pull;
    uint32_t driven;
    int32_t fault; /* errno of writes to this line (simgpio_set_fault); 0: none */
};

struct simgpio_shm {
    uint32_t magic;
    uint32_t nlines;
    uint32_t size;
    uint32_t ready; /* set last by the creator */
    char name[SIMGPIO_NAME_LEN];
    char label[SIMGPIO_NAME_LEN];
    pthread_mutex_t lock;
    uint32_t in_futex;  /* bumped on every input-level change */
    uint32_t out_futex; /* bumped on every output change */
    uint64_t in_head;
    uint64_t out_head;
    struct simgpio_event in_ring[SIMGPIO_RING];
    struct simgpio_event out_ring[SIMGPIO_RING];
    struct simgpio_line lines[SIMGPIO_MAX_LINES];
};

struct simgpio_chip {
    int fd;
    uint32_t nlines; /* checked at open; never read back from the shared file */
    struct simgpio_shm *shm;
};

uint64_t simgpio_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int lock(struct simgpio_shm *s)
{
    int rc = pthread_mutex_lock(&s->lock);
    if (rc == EOWNERDEAD) {
        /* a process died inside the lock; every update keeps the file consistent at each step */
        pthread_mutex_consistent(&s->lock);
        rc = 0;
    }
    return -rc;
}

static void unlock(struct simgpio_shm *s) { pthread_mutex_unlock(&s->lock); }

static void wake(uint32_t *word)
{
    __atomic_add_fetch(word, 1, __ATOMIC_SEQ_CST);
    syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static int wait_word(uint32_t *word, uint64_t *head, uint64_t seen, int timeout_ms)
{
    uint64_t deadline = simgpio_now_ns() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000ull;
    for (;;) {
        uint32_t w = __atomic_load_n(word, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(head, __ATOMIC_SEQ_CST) != seen)
            return 1;
        uint64_t now = simgpio_now_ns();
        if (now >= deadline)
            return 0;
        uint64_t left = deadline - now;
        struct timespec ts = {.tv_sec = (time_t)(left / 1000000000ull), .tv_nsec = (long)(left % 1000000000ull)};
        long rc = syscall(SYS_futex, word, FUTEX_WAIT, w, &ts, NULL, 0);
        if (rc < 0 && errno != EAGAIN && errno != EINTR && errno != ETIMEDOUT)
            return -errno;
    }
}

static void push(struct simgpio_event *ring, uint64_t *head, uint32_t line, uint32_t level)
{
    uint64_t h = *head;
    struct simgpio_event *e = &ring[h % SIMGPIO_RING];
    e->ts_ns = simgpio_now_ns();
    e->line = line;
    e->level = level;
    __atomic_store_n(head, h + 1, __ATOMIC_SEQ_CST);
}

static uint32_t physical(const struct simgpio_line *l)
{
    return (l->owner_pid != 0 && (l->flags & SIMGPIO_OUTPUT)) ? l->driven : l->pull;
}

/*
 * A change of a line's physical level.  Changes made by a consumer (request, set, release) are
 * what the outside sees: they go to out_ring.  Changes made by the outside (set_pull) are what
 * consumers of inputs see: they go to in_ring.
 */
static void note_change(struct simgpio_shm *s, uint32_t off, uint32_t before, int by_consumer)
{
    uint32_t after = physical(&s->lines[off]);
    if (after == before)
        return;
    if (by_consumer) {
        push(s->out_ring, &s->out_head, off, after);
        wake(&s->out_futex);
    } else {
        push(s->in_ring, &s->in_head, off, after);
        wake(&s->in_futex);
    }
}

static int map_fd(int fd, struct simgpio_chip **out)
{
    struct simgpio_chip *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    void *p = mmap(NULL, sizeof(struct simgpio_shm), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        free(c);
        return -e;
    }
    c->fd = fd;
    c->shm = p;
    *out = c;
    return 0;
}

int simgpio_create(const char *path, const char *name, const char *label, const char *const *line_names,
                   uint32_t nlines, struct simgpio_chip **out)
{
    if (nlines > SIMGPIO_MAX_LINES)
        return -EINVAL;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0660);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, sizeof(struct simgpio_shm)) < 0) {
        int e = errno;
        close(fd);
        unlink(path);
        return -e;
    }
    struct simgpio_chip *c;
    int rc = map_fd(fd, &c);
    if (rc < 0) {
        close(fd);
        unlink(path);
        return rc;
    }
    struct simgpio_shm *s = c->shm;
    memset(s, 0, sizeof(*s));
    s->magic = SIMGPIO_MAGIC;
    s->size = sizeof(*s);
    s->nlines = nlines;
    c->nlines = nlines;
    strncpy(s->name, name, SIMGPIO_NAME_LEN - 1);
    strncpy(s->label, label, SIMGPIO_NAME_LEN - 1);
    for (uint32_t i = 0; i < nlines; i++)
        if (line_names[i])
            strncpy(s->lines[i].name, line_names[i], SIMGPIO_NAME_LEN - 1);
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&s->lock, &a);
    pthread_mutexattr_destroy(&a);
    __atomic_store_n(&s->ready, 1, __ATOMIC_SEQ_CST);
    *out = c;
    return 0;
}

int simgpio_open(const char *path, struct simgpio_chip **out)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -ENODEV;
    }
    /* nothing of the file is trusted before its size, magic and line count are checked: a file of
     * another size (an older layout, a truncated or foreign file) is not mapped at all */
    if ((uint64_t)st.st_size != sizeof(struct simgpio_shm)) {
        close(fd);
        return -EINVAL;
    }
    struct simgpio_chip *c;
    int rc = map_fd(fd, &c);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    const struct simgpio_shm *s = c->shm;
    if (!__atomic_load_n(&s->ready, __ATOMIC_SEQ_CST))
        rc = -EAGAIN; /* the creator has not finished */
    else if (s->magic != SIMGPIO_MAGIC || s->size != sizeof(struct simgpio_shm) || s->nlines > SIMGPIO_MAX_LINES)
        rc = -EINVAL;
    if (rc < 0) {
        simgpio_close(c);
        return rc;
    }
    c->nlines = s->nlines;
    *out = c;
    return 0;
}

void simgpio_close(struct simgpio_chip *chip)
{
    if (!chip)
        return;
    munmap(chip->shm, sizeof(struct simgpio_shm));
    close(chip->fd);
    free(chip);
}

int simgpio_nlines(struct simgpio_chip *chip) { return (int)chip->nlines; }

int simgpio_chip_name(struct simgpio_chip *chip, char *name, char *label)
{
    memcpy(name, chip->shm->name, SIMGPIO_NAME_LEN);
    memcpy(label, chip->shm->label, SIMGPIO_NAME_LEN);
    return 0;
}

int simgpio_find(struct simgpio_chip *chip, const char *line_name)
{
    struct simgpio_shm *s = chip->shm;
    for (uint32_t i = 0; i < chip->nlines; i++)
        if (s->lines[i].name[0] && strncmp(s->lines[i].name, line_name, SIMGPIO_NAME_LEN) == 0)
            return (int)i;
    return -ENOENT;
}

int simgpio_info(struct simgpio_chip *chip, uint32_t offset, struct simgpio_info *out)
{
    struct simgpio_shm *s = chip->shm;
    if (offset >= chip->nlines)
        return -EINVAL;
    int rc = lock(s);
    if (rc < 0)
        return rc;
    const struct simgpio_line *l = &s->lines[offset];
    memcpy(out->name, l->name, SIMGPIO_NAME_LEN);
    memcpy(out->consumer, l->consumer, SIMGPIO_NAME_LEN);
    out->owner_pid = l->owner_pid;
    out->flags = l->flags;
    out->debounce_us = l->debounce_us;
    out->pull = l->pull;
    out->driven = l->driven;
    out->fault = l->fault;
    unlock(s);
    return 0;
}

static int alive(int32_t pid) { return pid > 0 && (kill(pid, 0) == 0 || errno != ESRCH); }

static void release_locked(struct simgpio_shm *s, uint32_t off)
{
    struct simgpio_line *l = &s->lines[off];
    uint32_t before = physical(l);
    l->owner_pid = 0;
    l->flags = 0;
    l->debounce_us = 0;
    memset(l->consumer, 0, SIMGPIO_NAME_LEN);
    note_change(s, off, before, 1);
}

int simgpio_request(struct simgpio_chip *chip, const uint32_t *offsets, const uint32_t *flags,
                    const uint32_t *debounce_us, const uint32_t *values, uint32_t n, const char *consumer)
{
    struct simgpio_shm *s = chip->shm;
    for (uint32_t i = 0; i < n; i++) {
        if (offsets[i] >= chip->nlines)
            return -EINVAL;
        uint32_t dir = flags[i] & (SIMGPIO_INPUT | SIMGPIO_OUTPUT);
        if (dir == 0 || dir == (SIMGPIO_INPUT | SIMGPIO_OUTPUT))
            return -EINVAL;
        if ((flags[i] & SIMGPIO_OUTPUT) && (flags[i] & (SIMGPIO_EDGE_RISING | SIMGPIO_EDGE_FALLING)))
            return -EINVAL; /* the kernel refuses edge detection on outputs */
        for (uint32_t j = 0; j < i; j++)
            if (offsets[j] == offsets[i])
                return -EINVAL;
    }
    int rc = lock(s);
    if (rc < 0)
        return rc;
    for (uint32_t i = 0; i < n; i++) {
        struct simgpio_line *l = &s->lines[offsets[i]];
        if (l->owner_pid != 0 && alive(l->owner_pid)) {
            unlock(s);
            return -EBUSY;
        }
        if (l->owner_pid != 0)
            release_locked(s, offsets[i]);
    }
    int32_t pid = (int32_t)getpid();
    for (uint32_t i = 0; i < n; i++) {
        struct simgpio_line *l = &s->lines[offsets[i]];
        uint32_t before = physical(l);
        l->flags = flags[i];
        l->debounce_us = debounce_us ? debounce_us[i] : 0;
        memset(l->consumer, 0, SIMGPIO_NAME_LEN);
        strncpy(l->consumer, consumer ? consumer : "", SIMGPIO_NAME_LEN - 1);
        uint32_t logical = values ? (values[i] != 0) : 0;
        l->driven = (flags[i] & SIMGPIO_ACTIVE_LOW) ? !logical : logical;
        l->owner_pid = pid;
        note_change(s, offsets[i], before, 1);
    }
    unlock(s);
    return 0;
}

int simgpio_release(struct simgpio_chip *chip, const uint32_t *offsets, uint32_t n)
{
    struct simgpio_shm *s = chip->shm;
    int rc = lock(s);
    if (rc < 0)
        return rc;
    int32_t pid = (int32_t)getpid();
    for (uint32_t i = 0; i < n; i++)
        if (offsets[i] < chip->nlines && s->lines[offsets[i]].owner_pid == pid)
            release_locked(s, offsets[i]);
    unlock(s);
    return 0;
}

int simgpio_get(struct simgpio_chip *chip, uint32_t offset)
{
    struct simgpio_shm *s = chip->shm;
    if (offset >= chip->nlines)
        return -EINVAL;
    const struct simgpio_line *l = &s->lines[offset];
    if (l->owner_pid != (int32_t)getpid())
        return -EPERM;
    uint32_t level = __atomic_load_n((l->flags & SIMGPIO_OUTPUT) ? &l->driven : &l->pull, __ATOMIC_SEQ_CST);
    return (int)((l->flags & SIMGPIO_ACTIVE_LOW) ? !level : level);
}

static int set_locked(struct simgpio_shm *s, uint32_t nlines, uint32_t offset, int value, int32_t pid)
{
    if (offset >= nlines)
        return -EINVAL;
    struct simgpio_line *l = &s->lines[offset];
    if (l->owner_pid != pid || !(l->flags & SIMGPIO_OUTPUT))
        return -EPERM;
    if (l->fault)
        return -l->fault; /* a broken line: the level stays as it was */
    uint32_t before = physical(l);
    uint32_t logical = value != 0;
    __atomic_store_n(&l->driven, (l->flags & SIMGPIO_ACTIVE_LOW) ? !logical : logical, __ATOMIC_SEQ_CST);
    note_change(s, offset, before, 1);
    return 0;
}

int simgpio_set(struct simgpio_chip *chip, uint32_t offset, int value)
{
    struct simgpio_shm *s = chip->shm;
    int rc = lock(s);
    if (rc < 0)
        return rc;
    rc = set_locked(s, chip->nlines, offset, value, (int32_t)getpid());
    unlock(s);
    return rc;
}

int simgpio_set_many(struct simgpio_chip *chip, const uint32_t *offsets, const int *values, uint32_t n)
{
    struct simgpio_shm *s = chip->shm;
    int32_t pid = (int32_t)getpid();
    for (uint32_t i = 0; i < n; i++) {
        if (offsets[i] >= chip->nlines)
            return -EINVAL;
        const struct simgpio_line *l = &s->lines[offsets[i]];
        if (l->owner_pid != pid || !(l->flags & SIMGPIO_OUTPUT))
            return -EPERM;
    }
    int rc = lock(s);
    if (rc < 0)
        return rc;
    /* one request is set at once in the kernel: a broken line fails the whole write, nothing changes */
    for (uint32_t i = 0; i < n && rc == 0; i++)
        if (s->lines[offsets[i]].fault)
            rc = -s->lines[offsets[i]].fault;
    for (uint32_t i = 0; i < n && rc == 0; i++)
        rc = set_locked(s, chip->nlines, offsets[i], values[i], pid);
    unlock(s);
    return rc;
}

uint64_t simgpio_input_head(struct simgpio_chip *chip) { return __atomic_load_n(&chip->shm->in_head, __ATOMIC_SEQ_CST); }

uint64_t simgpio_output_head(struct simgpio_chip *chip)
{
    return __atomic_load_n(&chip->shm->out_head, __ATOMIC_SEQ_CST);
}

int simgpio_wait_input(struct simgpio_chip *chip, uint64_t seen_head, int timeout_ms)
{
    return wait_word(&chip->shm->in_futex, &chip->shm->in_head, seen_head, timeout_ms);
}

int simgpio_wait_output(struct simgpio_chip *chip, uint64_t seen_head, int timeout_ms)
{
    return wait_word(&chip->shm->out_futex, &chip->shm->out_head, seen_head, timeout_ms);
}

static int read_ring(struct simgpio_shm *s, const struct simgpio_event *ring, const uint64_t *headp, uint64_t *cursor,
                     struct simgpio_event *buf, int max)
{
    int rc = lock(s);
    if (rc < 0)
        return rc;
    uint64_t head = *headp;
    if (*cursor > head)
        *cursor = head;
    if (head - *cursor > SIMGPIO_RING)
        *cursor = head - SIMGPIO_RING; /* overrun: the oldest are gone; the reader sees its cursor jump */
    int n = 0;
    while (*cursor < head && n < max) {
        buf[n++] = ring[*cursor % SIMGPIO_RING];
        (*cursor)++;
    }
    unlock(s);
    return n;
}

int simgpio_read_input(struct simgpio_chip *chip, uint64_t *cursor, struct simgpio_event *buf, int max)
{
    return read_ring(chip->shm, chip->shm->in_ring, &chip->shm->in_head, cursor, buf, max);
}

int simgpio_read_output(struct simgpio_chip *chip, uint64_t *cursor, struct simgpio_event *buf, int max)
{
    return read_ring(chip->shm, chip->shm->out_ring, &chip->shm->out_head, cursor, buf, max);
}

int simgpio_set_pull(struct simgpio_chip *chip, uint32_t offset, int level)
{
    struct simgpio_shm *s = chip->shm;
    if (offset >= chip->nlines)
        return -EINVAL;
    int rc = lock(s);
    if (rc < 0)
        return rc;
    struct simgpio_line *l = &s->lines[offset];
    uint32_t before = physical(l);
    l->pull = level != 0;
    note_change(s, offset, before, 0);
    unlock(s);
    return 0;
}

int simgpio_set_fault(struct simgpio_chip *chip, uint32_t offset, int errno_value)
{
    struct simgpio_shm *s = chip->shm;
    if (offset >= chip->nlines || errno_value < 0 || errno_value > 4095)
        return -EINVAL;
    int rc = lock(s);
    if (rc < 0)
        return rc;
    s->lines[offset].fault = errno_value;
    unlock(s);
    return 0;
}

int simgpio_physical(struct simgpio_chip *chip, uint32_t offset)
{
    struct simgpio_shm *s = chip->shm;
    if (offset >= chip->nlines)
        return -EINVAL;
    return (int)physical(&s->lines[offset]);
}

int simgpio_reap(struct simgpio_chip *chip)
{
    struct simgpio_shm *s = chip->shm;
    int rc = lock(s);
    if (rc < 0)
        return rc;
    int n = 0;
    for (uint32_t i = 0; i < chip->nlines; i++)
        if (s->lines[i].owner_pid != 0 && !alive(s->lines[i].owner_pid)) {
            release_locked(s, i);
            n++;
        }
    unlock(s);
    return n;
}
