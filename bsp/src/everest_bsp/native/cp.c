/* SPDX-License-Identifier: Apache-2.0 */
/* Copyright contributors to everest-py */
/* The control-pilot core: pure classification functions and the sampling thread (see cp.h). */
#define _GNU_SOURCE
#include "cp.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define CP_RING 256    /* events queued for Python; the oldest is dropped when full */
#define E_PULSE_NS 2000000ull /* 100 % for 2 ms before the pilot is released (clean edge to E) */
#define RAW_MAX 4095   /* 12-bit ADC */
#define IO_NOT_TRIED 1 /* in place of an rc: the write was not made, the source's fault stays as it is */

/* ------------------------------------------------------------------------------------------------
 * Pure functions (the Python twin in everest_bsp.tarragon.cp_logic mirrors each of them)
 */

int32_t cp_voltage_mV(int32_t raw)
{
    /* chargebyte's divider model, in integer steps with truncation as their C++ does it */
    int64_t v_adc = (int64_t)raw * 3300 / 4095;
    return (int32_t)(v_adc * 4561 / 476 - 16013);
}

int32_t cp_classify(int32_t u, int32_t prev)
{
    /* chargebyte-hw.md §2.4; the hysteresis bands keep the state of the previous measurement */
    if (u > 13000)
        return CP_PILOT_FAULT;
    if (u >= 11000)
        return CP_A;
    if (u >= 10000)
        return prev == CP_A ? CP_A : CP_B;
    if (u >= 8000)
        return CP_B;
    if (u >= 7000)
        return (prev == CP_A || prev == CP_B) ? CP_B : CP_C;
    if (u >= 5000)
        return CP_C;
    if (u >= 4000)
        return (prev == CP_A || prev == CP_B || prev == CP_C) ? CP_C : CP_D;
    if (u >= 2000)
        return CP_D;
    if (u >= -1000)
        return CP_E;
    if (u >= -2000)
        return (prev >= CP_A && prev <= CP_E) ? CP_E : CP_PILOT_FAULT;
    if (u >= -10000)
        return CP_PILOT_FAULT;
    if (u >= -11000)
        return prev == CP_F ? CP_F : CP_PILOT_FAULT;
    if (u >= -13000)
        return CP_F;
    return CP_PILOT_FAULT;
}

int32_t cp_debounce_step(struct cp_debounce *d, int32_t m)
{
    int32_t result = CP_DB_NONE;
    if (m == d->t1) {
        if (m != d->detected) {
            d->detected = m;
            result = CP_DB_CHANGED;
        }
    } else if (m == d->t0) {
        result = CP_DB_GLITCH; /* t0 -> t1 -> t0: the single t1 is suppressed */
    }
    d->t0 = d->t1;
    d->t1 = m;
    return result;
}

static int32_t iabs(int32_t v) { return v < 0 ? -v : v; }

void cp_evaluate(int32_t pos, int32_t neg, int32_t u_pos, int32_t u_neg, int32_t driven, int32_t duty_x100,
                 uint32_t prev_errors, struct cp_eval *out)
{
    int32_t state = pos;
    if (pos == CP_E && neg == CP_F)
        state = CP_F;
    if (pos == CP_PILOT_FAULT || neg == CP_PILOT_FAULT)
        state = CP_PILOT_FAULT;
    if (!driven) {
        /* the pilot floats: E, and nothing to check (errors stay as they were) */
        out->state = CP_E;
        out->errors = prev_errors;
        return;
    }
    uint32_t errors = 0;
    int pwm = duty_x100 > 0 && duty_x100 < 10000;
    int neg_missing = iabs(u_pos + u_neg) <= CP_ERROR_VOLTAGE_MAX_DIFF;
    if ((!pwm && u_pos < CP_SHORT_U_POS_MAX && u_neg > CP_NEG_12V_MIN) ||
        (pwm && u_pos < CP_SHORT_U_POS_MAX && neg_missing)) {
        errors |= CP_ERR_SHORT;
        state = CP_E;
    }
    if (state == CP_D && u_neg <= CP_NEG_12V_MIN)
        errors |= CP_ERR_VENTILATION;
    uint32_t diode = prev_errors & CP_ERR_DIODE;
    if (state == CP_A)
        diode = 0; /* the latch holds until A is seen */
    if (pwm && u_pos > CP_SHORT_U_POS_MAX && state != CP_A && neg_missing)
        diode = CP_ERR_DIODE;
    errors |= diode;
    if (state == CP_PILOT_FAULT && !diode)
        errors |= CP_ERR_PILOT;
    out->state = state;
    out->errors = errors;
}

void cp_process_batch(const int32_t *raw_pos, const int32_t *raw_neg, int32_t n, struct cp_debounce *pos,
                      struct cp_debounce *neg, int32_t *detected_pos, int32_t *detected_neg)
{
    for (int32_t i = 0; i < n; i++) {
        cp_debounce_step(pos, cp_classify(cp_voltage_mV(raw_pos[i]), pos->t1));
        cp_debounce_step(neg, cp_classify(cp_voltage_mV(raw_neg[i]), neg->t1));
        detected_pos[i] = pos->detected;
        detected_neg[i] = neg->detected;
    }
}

/* ------------------------------------------------------------------------------------------------
 * The core
 *
 * Locks: `pwm` is held for a whole sample window and for every change of the pilot output, so the
 * output never changes while the peak detectors integrate.  `st` guards the state, the relays and
 * the event ring; it is held only for short steps.  Order: pwm before st.  A command announces
 * itself in `cmd_waiting`; the thread then lets it have `pwm` before the next sample (with
 * SCHED_FIFO on a single core the thread would otherwise take the mutex back at once).
 */

struct cp_core {
    struct cp_config cfg;
    pthread_t thread;
    int started;
    int efd;

    pthread_mutex_t pwm;
    pthread_cond_t cv; /* with pwm: commands done, enable, stop */
    atomic_int cmd_waiting;
    int stop;
    /* output, changed with pwm and st held */
    int enabled;
    int driven;
    int pwm_on;     /* sysfs enable as last written */
    int releasing;  /* cp_state_E is under way (the 2 ms pulse): no relay may close */
    int32_t duty;   /* cached duty_x100 */
    int32_t out_duty; /* duty_x100 on the pin while driven */
    uint32_t out_gen; /* bumped on every output change */

    pthread_mutex_t st;
    struct cp_debounce dpos, dneg;
    int32_t state;
    uint32_t errors;
    uint32_t relays;  /* mask switched on through cp_relays_on */
    uint32_t off_pending; /* relays whose off write failed: retried every cycle until it succeeds */
    int32_t off_reason;   /* CP_OFF_* reported when the pending offs succeed */
    int trip;
    uint32_t io_faults;
    uint32_t eval_gen;
    uint32_t sample_gen; /* output generation the samples since `fresh` were taken under */
    uint32_t fresh;      /* samples taken under the current output */
    int32_t u_pos, u_neg;
    struct cp_stats stats;
    struct cp_event ring[CP_RING];
    uint32_t ring_head, ring_len;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until_ns(uint64_t t)
{
    struct timespec ts = {.tv_sec = (time_t)(t / 1000000000ull), .tv_nsec = (long)(t % 1000000000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* -- events (st held) -------------------------------------------------------------------------- */

static void emit(struct cp_core *c, int32_t kind, int32_t a, int32_t b)
{
    uint32_t slot;
    if (kind == CP_EV_GLITCH && c->ring_len >= CP_RING / 4) {
        /* a noisy pilot glitches every sample: glitches are only counted (stats) once the ring
         * fills, so they never push state, error or relay events out */
        c->stats.events_dropped++;
        return;
    }
    if (c->ring_len == CP_RING) {
        c->ring_head = (c->ring_head + 1) % CP_RING; /* drop the oldest */
        c->ring_len--;
        c->stats.events_dropped++;
    }
    slot = (c->ring_head + c->ring_len) % CP_RING;
    c->ring[slot] = (struct cp_event){now_ns(), kind, a, b, c->u_pos, c->u_neg, 0};
    c->ring_len++;
    uint64_t one = 1;
    ssize_t w = write(c->efd, &one, sizeof(one));
    (void)w; /* EAGAIN only when the counter is saturated: readable anyway */
}

/* -- sources and relays (st held) -------------------------------------------------------------- */

static int relay_present(const struct cp_core *c, int i) { return c->cfg.relays[i].kind != LN_NONE; }

/* A source failed (rc < 0) or works (rc 0; IO_NOT_TRIED leaves it); reported on change.
 * 1 when the source has just started failing (the caller decides about the relays). */
static int io_state(struct cp_core *c, int where, int rc)
{
    uint32_t bit = 1u << where;
    if (rc < 0 && !(c->io_faults & bit)) {
        c->io_faults |= bit;
        emit(c, CP_EV_IO, rc, where);
        return 1;
    }
    if (rc == 0 && (c->io_faults & bit)) {
        c->io_faults &= ~bit;
        emit(c, CP_EV_IO, 0, where);
    }
    return 0;
}

/* A relay's line could not be driven to 0: it stays pending (the thread writes it off every cycle).
 * `reason` is what the RELAYS_OFF event names once that succeeds (the first reason counts). */
static void off_failed(struct cp_core *c, int i, int32_t reason)
{
    if (!c->off_pending)
        c->off_reason = reason;
    c->off_pending |= 1u << i;
}

/* Relay i to 0; 0 or -errno.  `*opened` gains the relay when it was on (switched on through
 * cp_relays_on, or its line reads 1) and its line is 0 now. */
static int relay_off(struct cp_core *c, int i, int32_t reason, uint32_t *opened)
{
    uint32_t bit = 1u << i;
    int was_on = (c->relays & bit) || ln_get(&c->cfg.relays[i]) == 1;
    int rc = ln_set(&c->cfg.relays[i], 0);
    if (rc < 0) {
        off_failed(c, i, reason);
        return rc;
    }
    c->off_pending &= ~bit;
    c->relays &= ~bit;
    if (was_on)
        *opened |= bit;
    return 0;
}

/* The relay source fails while any off is pending (so cp_relays_on refuses); rc: the last failure.
 * Never forces relays off itself: force_off calls it. */
static int relay_io(struct cp_core *c, int rc)
{
    return io_state(c, CP_IO_RELAY, c->off_pending ? (rc < 0 ? rc : -EIO) : 0);
}

/* The core opened relays by itself: one event names those that were on and are open now. */
static void report_opened(struct cp_core *c, int32_t reason, uint32_t opened)
{
    if (!opened)
        return;
    c->stats.forced_off++;
    emit(c, CP_EV_RELAYS_OFF, reason, (int32_t)opened);
}

/* Every configured relay line to 0 now.  A line that cannot be written stays pending: it is not in
 * this RELAYS_OFF (it is not open), it fails the relay source (an IO event), and the thread's retry
 * reports it in a RELAYS_OFF of its own once it is open. */
static void force_off(struct cp_core *c, int32_t reason)
{
    uint32_t opened = 0;
    int failed = 0;
    for (int i = 0; i < 2; i++) {
        if (!relay_present(c, i))
            continue;
        int rc = relay_off(c, i, reason, &opened);
        if (rc < 0 && failed == 0)
            failed = rc;
    }
    report_opened(c, reason, opened);
    relay_io(c, failed);
}

/* Each cycle: the offs that failed before, again, until they succeed. */
static void retry_offs(struct cp_core *c)
{
    if (!c->off_pending)
        return;
    uint32_t opened = 0;
    int failed = 0;
    for (int i = 0; i < 2; i++) {
        if (!(c->off_pending & (1u << i)))
            continue;
        int rc = relay_off(c, i, c->off_reason, &opened);
        if (rc < 0 && failed == 0)
            failed = rc;
    }
    report_opened(c, c->off_reason, opened);
    relay_io(c, failed);
}

static void set_trip(struct cp_core *c, int active)
{
    if (active == c->trip)
        return;
    c->trip = active;
    emit(c, CP_EV_TRIP, 0, active);
    if (active)
        force_off(c, CP_OFF_TRIP);
}

/* A source of the pilot (measurement, output) or the trip input failed or works; relays off when it
 * starts failing (cp_relays_on refuses while any source fails, so nothing can be on afterwards). */
static void set_io(struct cp_core *c, int where, int rc)
{
    if (io_state(c, where, rc))
        force_off(c, CP_OFF_IO);
}

/* Read the trip input; 0 or the -errno of a failed read (the caller reports it). */
static int poll_trip(struct cp_core *c)
{
    if (c->cfg.trip.kind == LN_NONE)
        return 0;
    int v = ln_get(&c->cfg.trip);
    if (v < 0)
        return v;
    set_trip(c, v);
    return 0;
}

/* -- pilot output (pwm held) ------------------------------------------------------------------- */

static int write_num(int fd, uint64_t value)
{
    char buf[24];
    int len = snprintf(buf, sizeof(buf), "%llu\n", (unsigned long long)value);
    ssize_t w = pwrite(fd, buf, (size_t)len, 0);
    if (w < 0)
        return -errno;
    return w == len ? 0 : -EIO;
}

/* Announce a command, then take pwm (the thread yields it before its next sample). */
static void cmd_lock(struct cp_core *c)
{
    atomic_fetch_add(&c->cmd_waiting, 1);
    pthread_mutex_lock(&c->pwm);
}

static void cmd_unlock(struct cp_core *c)
{
    atomic_fetch_sub(&c->cmd_waiting, 1);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->pwm);
}

/* Record an output change (st taken here); forced relay-off when the pilot no longer allows power.
 * rc_pwm / rc_inv: the PWM and CP_INVERT writes made (IO_NOT_TRIED: none).  A failed write leaves
 * the output unknown: relays off (CP_OFF_IO), and the source's fault stays set (cp_relays_on refuses)
 * until a later write of the same source succeeds.  A write that fails again while its source is
 * already failing needs no relay-off: nothing could be switched on since the first failure. */
static void note_output(struct cp_core *c, int driven, int32_t out_duty, int rc_pwm, int rc_inv)
{
    pthread_mutex_lock(&c->st);
    c->driven = driven;
    c->out_duty = out_duty;
    c->out_gen++;
    set_io(c, CP_IO_PWM, rc_pwm);
    set_io(c, CP_IO_INVERT, rc_inv);
    if (!c->enabled || !driven || out_duty == 0)
        force_off(c, CP_OFF_OUTPUT);
    pthread_mutex_unlock(&c->st);
}

static uint32_t io_faults(struct cp_core *c)
{
    pthread_mutex_lock(&c->st);
    uint32_t f = c->io_faults;
    pthread_mutex_unlock(&c->st);
    return f;
}

/* set_duty_cycle of chargebyte: duty, then enable, then CP_INVERT active.  After a failed write the
 * output is unknown, so enable and CP_INVERT are written again even when they look right. */
static int drive(struct cp_core *c, int32_t duty_x100)
{
    uint64_t ns = (uint64_t)c->cfg.period_ns * (uint64_t)duty_x100 / 10000u;
    uint32_t faults = io_faults(c);
    int rc_inv = IO_NOT_TRIED;
    int rc_pwm = write_num(c->cfg.pwm_duty_fd, ns);
    if (rc_pwm == 0 && (!c->pwm_on || (faults & (1u << CP_IO_PWM)))) {
        rc_pwm = write_num(c->cfg.pwm_enable_fd, 1);
        if (rc_pwm == 0)
            c->pwm_on = 1;
    }
    if (rc_pwm == 0 && (!c->driven || (faults & (1u << CP_IO_INVERT))))
        rc_inv = ln_set(&c->cfg.cp_invert, 1);
    int rc = rc_pwm < 0 ? rc_pwm : (rc_inv < 0 ? rc_inv : 0);
    note_output(c, rc == 0 ? 1 : c->driven, rc == 0 ? duty_x100 : c->out_duty, rc_pwm, rc_inv);
    return rc;
}

/* -- the thread -------------------------------------------------------------------------------- */

static int read_raw(int fd, int32_t *raw)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    if (n < 0)
        return -errno;
    buf[n] = 0;
    char *nl = memchr(buf, '\n', (size_t)n);
    if (nl)
        *nl = 0;
    char *p = buf;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p < '0' || *p > '9')
        return -EINVAL;
    long v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p - '0');
        if (v > RAW_MAX)
            return -ERANGE;
        p++;
    }
    while (*p == ' ' || *p == '\t' || *p == '\r')
        p++;
    if (*p)
        return -EINVAL;
    *raw = (int32_t)v;
    return 0;
}

static int set_resets(struct cp_core *c, int value)
{
    int rc = ln_set(&c->cfg.rst_pos, value);
    int rc2 = ln_set(&c->cfg.rst_neg, value);
    return rc < 0 ? rc : rc2;
}

/* One sample's evaluation (st held). */
static void process(struct cp_core *c, int32_t raw_pos, int32_t raw_neg, int driven, int32_t duty, uint32_t gen)
{
    int32_t u_pos = cp_voltage_mV(raw_pos), u_neg = cp_voltage_mV(raw_neg);
    c->u_pos = u_pos;
    c->u_neg = u_neg;
    int32_t rp = cp_debounce_step(&c->dpos, cp_classify(u_pos, c->dpos.t1));
    if (rp == CP_DB_GLITCH) {
        c->stats.glitches++;
        emit(c, CP_EV_GLITCH, 0, c->dpos.t0);
    }
    int32_t rn = cp_debounce_step(&c->dneg, cp_classify(u_neg, c->dneg.t1));
    if (rn == CP_DB_GLITCH) {
        c->stats.glitches++;
        emit(c, CP_EV_GLITCH, 1, c->dneg.t0);
    }
    if (gen != c->sample_gen) {
        c->sample_gen = gen;
        c->fresh = 0;
    }
    c->fresh++;
    /* evaluated when a side changed (chargebyte) or the output changed since the last evaluation;
     * after an output change only once two samples were taken under it, so an old state is never
     * judged against new voltages (F -> PWM would look like a shorted diode) */
    if (c->dpos.detected == CP_UNKNOWN || c->fresh < 2 ||
        (rp != CP_DB_CHANGED && rn != CP_DB_CHANGED && gen == c->eval_gen))
        return;
    c->eval_gen = gen;
    struct cp_eval ev;
    cp_evaluate(c->dpos.detected, c->dneg.detected, u_pos, u_neg, driven, duty, c->errors, &ev);
    uint32_t changed = ev.errors ^ c->errors;
    int32_t before = c->state;
    c->errors = ev.errors;
    c->state = ev.state;
    if (ev.errors & (CP_ERR_SHORT | CP_ERR_DIODE | CP_ERR_PILOT))
        force_off(c, CP_OFF_FAULT);
    else if (ev.state != CP_C && ev.state != CP_D)
        force_off(c, CP_OFF_STATE);
    if (ev.state != before)
        emit(c, CP_EV_STATE, ev.state, before);
    for (uint32_t bit = 1; bit <= CP_ERR_PILOT; bit <<= 1)
        if (changed & bit)
            emit(c, CP_EV_ERROR, (int32_t)bit, (ev.errors & bit) ? 1 : 0);
}

static void *run(void *arg)
{
    struct cp_core *c = arg;
    pthread_mutex_lock(&c->st);
    c->stats.tid = (int32_t)syscall(SYS_gettid);
    pthread_mutex_unlock(&c->st);

    pthread_mutex_lock(&c->pwm);
    while (!c->stop) {
        if (atomic_load(&c->cmd_waiting) > 0) {
            pthread_cond_wait(&c->cv, &c->pwm); /* a command takes pwm meanwhile */
            continue;
        }
        if (!c->enabled) {
            pthread_mutex_unlock(&c->pwm);
            pthread_mutex_lock(&c->st);
            retry_offs(c);
            set_io(c, CP_IO_TRIP, poll_trip(c));
            pthread_mutex_unlock(&c->st);
            pthread_mutex_lock(&c->pwm);
            if (c->stop || c->enabled || atomic_load(&c->cmd_waiting) > 0)
                continue;
            uint64_t until = now_ns() + (uint64_t)c->cfg.idle_poll_us * 1000u;
            struct timespec ts = {.tv_sec = (time_t)(until / 1000000000ull), .tv_nsec = (long)(until % 1000000000ull)};
            pthread_cond_timedwait(&c->cv, &c->pwm, &ts);
            continue;
        }
        /* one sample, chargebyte-hw.md §2.3: reset both peak detectors, release, let them settle, read */
        uint64_t t0 = now_ns();
        int rc_rst = set_resets(c, 1);
        sleep_until_ns(t0 + (uint64_t)c->cfg.reset_us * 1000u);
        int rc_rel = set_resets(c, 0);
        if (rc_rst == 0)
            rc_rst = rc_rel;
        sleep_until_ns(now_ns() + (uint64_t)c->cfg.settle_us * 1000u);
        int32_t raw_pos = 0, raw_neg = 0;
        int rc_pos = read_raw(c->cfg.adc_pos_fd, &raw_pos);
        int rc_neg = read_raw(c->cfg.adc_neg_fd, &raw_neg);
        int driven = c->driven;
        int32_t duty = c->out_duty;
        uint32_t gen = c->out_gen;
        pthread_mutex_unlock(&c->pwm);

        pthread_mutex_lock(&c->st);
        retry_offs(c);
        set_io(c, CP_IO_ADC_POS, rc_pos);
        set_io(c, CP_IO_ADC_NEG, rc_neg);
        set_io(c, CP_IO_RESET, rc_rst);
        set_io(c, CP_IO_TRIP, poll_trip(c));
        if (rc_pos == 0 && rc_neg == 0)
            process(c, raw_pos, raw_neg, driven, duty, gen);
        uint64_t took = now_ns() - t0;
        c->stats.samples++;
        c->stats.cycle_ns_last = took;
        if (took > c->stats.cycle_ns_max)
            c->stats.cycle_ns_max = took;
        pthread_mutex_unlock(&c->st);

        pthread_mutex_lock(&c->pwm);
    }
    pthread_mutex_unlock(&c->pwm);
    return NULL;
}

/* -- API --------------------------------------------------------------------------------------- */

int cp_create(const struct cp_config *cfg, struct cp_core **out)
{
    if (!cfg || !out || cfg->adc_pos_fd < 0 || cfg->adc_neg_fd < 0 || cfg->pwm_duty_fd < 0 ||
        cfg->pwm_enable_fd < 0 || cfg->period_ns == 0 || cfg->idle_poll_us == 0 || cfg->rt_priority < 0 ||
        cfg->rt_priority > 99)
        return -EINVAL;
    struct cp_core *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->cfg = *cfg;
    c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->efd < 0) {
        int rc = -errno;
        free(c);
        return rc;
    }
    pthread_mutex_init(&c->pwm, NULL);
    pthread_mutex_init(&c->st, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&c->cmd_waiting, 0);
    c->duty = 10000;
    c->state = CP_UNKNOWN;
    c->dpos = c->dneg = (struct cp_debounce){CP_UNKNOWN, CP_UNKNOWN, CP_UNKNOWN};

    /* init as chargebyte: PWM off, period set, 100 % cached, pilot not driven, relays and resets off */
    int rc = write_num(cfg->pwm_enable_fd, 0);
    if (rc == 0)
        rc = write_num(cfg->pwm_duty_fd, 0); /* never above the period about to be written */
    if (rc == 0 && cfg->pwm_period_fd >= 0)
        rc = write_num(cfg->pwm_period_fd, cfg->period_ns);
    if (rc == 0)
        rc = ln_set(&cfg->cp_invert, 0);
    for (int i = 0; i < 2 && rc == 0; i++)
        rc = ln_set(&cfg->relays[i], 0);
    if (rc == 0)
        rc = ln_set(&cfg->rst_pos, 0);
    if (rc == 0)
        rc = ln_set(&cfg->rst_neg, 0);
    if (rc < 0) {
        cp_destroy(c);
        return rc;
    }
    *out = c;
    return 0;
}

int cp_start(struct cp_core *c)
{
    if (c->started)
        return -EALREADY;
    int rc = EPERM;
    if (c->cfg.rt_priority > 0) {
        pthread_attr_t attr;
        struct sched_param sp = {.sched_priority = c->cfg.rt_priority};
        pthread_attr_init(&attr);
        pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
        pthread_attr_setschedpolicy(&attr, SCHED_FIFO);
        pthread_attr_setschedparam(&attr, &sp);
        rc = pthread_create(&c->thread, &attr, run, c);
        pthread_attr_destroy(&attr);
        if (rc == 0) {
            pthread_mutex_lock(&c->st);
            c->stats.realtime = 1;
            pthread_mutex_unlock(&c->st);
        }
    }
    if (rc == EPERM) /* no right to real-time scheduling (or not asked): a normal thread */
        rc = pthread_create(&c->thread, NULL, run, c);
    if (rc != 0)
        return -rc;
    c->started = 1;
    return 0;
}

void cp_destroy(struct cp_core *c)
{
    if (!c)
        return;
    if (c->started) {
        cmd_lock(c);
        c->stop = 1;
        cmd_unlock(c);
        pthread_join(c->thread, NULL);
        c->started = 0;
    }
    /* the safe output: relays off, pilot at F (-12 V, duty 0) */
    pthread_mutex_lock(&c->pwm);
    c->enabled = 0;
    pthread_mutex_lock(&c->st);
    force_off(c, CP_OFF_OUTPUT);
    pthread_mutex_unlock(&c->st);
    if (c->driven || c->pwm_on)
        drive(c, 0);
    pthread_mutex_unlock(&c->pwm);
    if (c->efd >= 0)
        close(c->efd);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->st);
    pthread_mutex_destroy(&c->pwm);
    free(c);
}

int cp_event_fd(struct cp_core *c) { return c->efd; }

int cp_read_events(struct cp_core *c, struct cp_event *buf, int max)
{
    if (max < 0)
        return -EINVAL;
    pthread_mutex_lock(&c->st);
    uint64_t cnt;
    ssize_t r = read(c->efd, &cnt, sizeof(cnt)); /* clears the eventfd; EAGAIN when nothing was signalled */
    (void)r;
    int n = 0;
    while (n < max && c->ring_len > 0) {
        buf[n++] = c->ring[c->ring_head];
        c->ring_head = (c->ring_head + 1) % CP_RING;
        c->ring_len--;
    }
    if (c->ring_len > 0) { /* more than max: stay readable */
        uint64_t one = 1;
        ssize_t w = write(c->efd, &one, sizeof(one));
        (void)w;
    }
    pthread_mutex_unlock(&c->st);
    return n;
}

int cp_enable(struct cp_core *c, int on)
{
    cmd_lock(c);
    int rc;
    pthread_mutex_lock(&c->st);
    c->enabled = on != 0;
    pthread_mutex_unlock(&c->st);
    /* enabled: the cached duty; disabled: 0 % (state F), the cache is kept for the next enable */
    rc = drive(c, on ? c->duty : 0);
    cmd_unlock(c);
    return rc;
}

int cp_set_duty(struct cp_core *c, int32_t duty_x100)
{
    if (duty_x100 < 0 || duty_x100 > 10000)
        return -EINVAL;
    cmd_lock(c);
    int rc = 0;
    pthread_mutex_lock(&c->st);
    c->duty = duty_x100;
    pthread_mutex_unlock(&c->st);
    if (c->enabled)
        rc = drive(c, duty_x100);
    cmd_unlock(c);
    return rc;
}

int cp_state_X1(struct cp_core *c) { return cp_set_duty(c, 10000); }

int cp_state_F(struct cp_core *c) { return cp_set_duty(c, 0); }

int cp_state_E(struct cp_core *c)
{
    cmd_lock(c);
    pthread_mutex_lock(&c->st);
    c->releasing = 1;
    force_off(c, CP_OFF_OUTPUT);
    pthread_mutex_unlock(&c->st);
    int rc = 0;
    if (c->driven) {
        /* a clean edge: 100 % for 2 ms, then release the pilot */
        rc = drive(c, 10000);
        sleep_until_ns(now_ns() + E_PULSE_NS);
    }
    int rc2 = ln_set(&c->cfg.cp_invert, 0);
    int rc3 = write_num(c->cfg.pwm_enable_fd, 0);
    if (rc3 == 0)
        c->pwm_on = 0;
    if (rc == 0)
        rc = rc2 < 0 ? rc2 : rc3;
    note_output(c, rc2 < 0 ? c->driven : 0, 0, rc3, rc2);
    pthread_mutex_lock(&c->st);
    c->releasing = 0;
    pthread_mutex_unlock(&c->st);
    cmd_unlock(c);
    return rc;
}

int cp_relays_on(struct cp_core *c, uint32_t mask)
{
    if (mask & ~3u)
        return -EINVAL;
    for (int i = 0; i < 2; i++)
        if ((mask & (1u << i)) && !relay_present(c, i))
            return -ENODEV;
    pthread_mutex_lock(&c->st);
    set_io(c, CP_IO_TRIP, poll_trip(c)); /* the freshest trip level, not the one of the last cycle */
    int rc = 0;
    if (c->trip)
        rc = CP_REFUSED_TRIP;
    else if (c->io_faults)
        rc = CP_REFUSED_IO;
    else if (!c->enabled || !c->driven || c->releasing || c->out_duty == 0 || c->eval_gen != c->out_gen ||
             (c->state != CP_C && c->state != CP_D))
        rc = CP_REFUSED_STATE; /* out_duty 0: the EVSE drives F; eval_gen behind: the state predates the output */
    else if (c->errors)
        rc = CP_REFUSED_FAULT;
    for (int i = 0; i < 2 && rc == 0; i++) {
        if (!(mask & (1u << i)))
            continue;
        rc = ln_set(&c->cfg.relays[i], 1);
        if (rc == 0) {
            c->relays |= 1u << i;
        } else {
            /* the line's level is unknown now: it is driven off until that works, and every relay
             * opens (nothing stays on while a source fails) */
            off_failed(c, i, CP_OFF_IO);
            if (relay_io(c, rc))
                force_off(c, CP_OFF_IO);
        }
    }
    pthread_mutex_unlock(&c->st);
    return rc;
}

int cp_relays_off(struct cp_core *c, uint32_t mask)
{
    if (mask & ~3u)
        return -EINVAL;
    pthread_mutex_lock(&c->st);
    int rc = 0;
    for (int i = 0; i < 2; i++) {
        if (!(mask & (1u << i)) || !relay_present(c, i))
            continue;
        uint32_t opened = 0; /* asked for: no RELAYS_OFF event */
        int r = relay_off(c, i, CP_OFF_IO, &opened);
        if (r < 0 && rc == 0)
            rc = r;
    }
    /* a relay that cannot be opened: the thread retries it (and reports it as RELAYS_OFF CP_OFF_IO
     * once open), the others open now */
    if (relay_io(c, rc))
        force_off(c, CP_OFF_IO);
    pthread_mutex_unlock(&c->st);
    return rc;
}

void cp_get_stats(struct cp_core *c, struct cp_stats *out)
{
    pthread_mutex_lock(&c->st);
    *out = c->stats;
    out->u_pos_mV = c->u_pos;
    out->u_neg_mV = c->u_neg;
    out->state = c->state;
    out->errors = c->errors;
    out->relays_on = c->relays;
    out->enabled = c->enabled;
    out->driven = c->driven;
    out->duty_x100 = c->duty;
    out->trip = c->trip;
    out->io_faults = c->io_faults;
    pthread_mutex_unlock(&c->st);
}
