/* SPDX-License-Identifier: Apache-2.0 */
/* Copyright contributors to everest-py */
/*
 * Control pilot core of the Charge Control C (Tarragon): acquisition, classification, debounce,
 * error checks and the relay-off reaction, in one C thread that never takes the GIL.
 *
 * Facts (chargebyte-hw.md §2.3-§2.6): one sample = assert both peak-detector resets, wait
 * reset_us (1500), release, wait settle_us (2000), read the CP+ and CP- ADC raws.  Every PWM
 * change takes the same mutex as a sample, so the output never changes inside a sample window.
 *
 * Python decides policy (relay sequencing, wiring modes, feedback, errors on the bus); this core
 * enforces the safety floor by itself: it switches every relay line off when the pilot leaves
 * C/D, on CP short, diode fault or pilot fault, when the EVSE side drives E or F or is disabled,
 * and while the trip input (an external RCM) is active; and it refuses to switch relays on
 * unless the pilot is in C or D with no fault and no trip.  Any failed access (an ADC or trip read,
 * a PWM, CP_INVERT, peak-reset or relay write) opens the relays and refuses closing until that
 * source works again; a relay whose off write failed is written off again every cycle (sampling or
 * idle) until that succeeds, and only then reported open (CP_EV_RELAYS_OFF).
 *
 * Per sample: classify each side (with the side's last measurement as hysteresis memory), debounce
 * (two equal measurements change a side), and evaluate the combined state and errors when a side
 * changed or the pilot output changed since the last evaluation.  Relays are switched off in the
 * same cycle the change is accepted, before the event is queued.  Events go to a ring of 256
 * (the oldest is dropped and counted when Python falls behind) and bump an eventfd.  The thread
 * never calls into Python; every call here is safe from any thread.
 */
#ifndef EVEREST_BSP_CP_H
#define EVEREST_BSP_CP_H

#include <stdint.h>

#include "lines.h"

/* pilot states; the Python twin uses the same numbers */
#define CP_A 0
#define CP_B 1
#define CP_C 2
#define CP_D 3
#define CP_E 4
#define CP_F 5
#define CP_PILOT_FAULT 6
#define CP_UNKNOWN 7 /* nothing detected yet */

/* error bits (cp_eval.errors) */
#define CP_ERR_SHORT 0x01u       /* MREC14PilotFault / CPShortFault */
#define CP_ERR_DIODE 0x02u       /* DiodeFault (latched until A is seen) */
#define CP_ERR_VENTILATION 0x04u /* VentilationNotAvailable */
#define CP_ERR_PILOT 0x08u       /* MREC14PilotFault / CPOutOfRange */

/* event kinds */
#define CP_EV_STATE 1      /* a: new combined state, b: the state before */
#define CP_EV_ERROR 2      /* a: error bit, b: 1 raised / 0 cleared */
#define CP_EV_RELAYS_OFF 3 /* a: reason (CP_OFF_*), b: mask of relays that were on and are open now; a
                            * relay whose off write failed comes in its own event once the retry opened it */
#define CP_EV_GLITCH 4     /* a: side (0 positive, 1 negative), b: the suppressed state */
#define CP_EV_TRIP 5       /* b: 1 trip input became active, 0 released */
#define CP_EV_IO 6         /* a: -errno (0: this source works again), b: where (CP_IO_*) */

/* reasons for a forced relay-off */
#define CP_OFF_STATE 1    /* pilot left C/D (C->B, A, E, F) */
#define CP_OFF_FAULT 2    /* CP short, diode fault or pilot fault */
#define CP_OFF_OUTPUT 3   /* the EVSE side disabled the pilot or drove E/F */
#define CP_OFF_TRIP 4     /* trip input (RCM) */
#define CP_OFF_IO 5       /* a source failed (io_faults): the pilot or a relay line is unknown */

/* sources of CP_EV_IO and bits of io_faults (1 << source), one per source: a success of one never
 * hides the failure of another.  A source fails from its first failed access until one succeeds. */
#define CP_IO_ADC_POS 1 /* read of the CP+ peak ADC */
#define CP_IO_ADC_NEG 2 /* read of the CP- peak ADC */
#define CP_IO_PWM 3     /* write of the PWM duty_cycle or enable */
#define CP_IO_RESET 4   /* write of a peak-detector reset line */
#define CP_IO_TRIP 5    /* read of the trip input */
#define CP_IO_INVERT 6  /* write of CP_INVERT */
#define CP_IO_RELAY 7   /* write of a relay line: fails while a relay-off is pending (retried each cycle) */

/* cp_relays_on results besides 0 */
#define CP_REFUSED_STATE 1  /* pilot not in C/D, or not enabled/driven */
#define CP_REFUSED_FAULT 2  /* a CP error is active */
#define CP_REFUSED_TRIP 3   /* trip input active */
#define CP_REFUSED_IO 4     /* a source fails (io_faults): pilot measurement, pilot output, trip input or a relay line */

struct cp_debounce {
    int32_t t0;       /* measurement before last */
    int32_t t1;       /* last measurement */
    int32_t detected; /* accepted state */
};

/* cp_debounce_step results */
#define CP_DB_NONE 0
#define CP_DB_CHANGED 1    /* detected changed to the new measurement */
#define CP_DB_GLITCH 2     /* X -> Y -> X: the single Y is suppressed */

/* thresholds of the error checks (chargebyte-hw.md §2.4) */
#define CP_ERROR_VOLTAGE_MAX_DIFF 1200 /* mV: |U+ + U-| at most this => the negative half is missing */
#define CP_SHORT_U_POS_MAX 2000        /* mV: U+ below => possible short */
#define CP_NEG_12V_MIN -10000          /* mV: U- at most this => the -12 V half is present */

struct cp_eval {
    int32_t state;      /* combined state after the checks */
    uint32_t errors;    /* CP_ERR_* now active */
};

struct cp_config {
    int32_t adc_pos_fd;      /* in_voltageN_raw of the CP+ peak detector, opened O_RDONLY */
    int32_t adc_neg_fd;      /* in_voltageN_raw of the CP- peak detector */
    struct ln_ref rst_pos;   /* peak reset outputs, active = reset */
    struct ln_ref rst_neg;
    struct ln_ref cp_invert; /* active = pilot driven */
    int32_t pwm_duty_fd;     /* sysfs duty_cycle, opened O_WRONLY */
    int32_t pwm_enable_fd;   /* sysfs enable, opened O_WRONLY */
    int32_t pwm_period_fd;   /* sysfs period, opened O_WRONLY; -1: leave the period as it is */
    uint32_t period_ns;      /* 1000000 */
    struct ln_ref relays[2]; /* LN_NONE for an absent relay */
    struct ln_ref trip;      /* trip input (active = trip), LN_NONE when not used */
    uint32_t reset_us;       /* 1500 */
    uint32_t settle_us;      /* 2000 */
    uint32_t idle_poll_us;   /* trip-input poll period while sampling is off: 10000 */
    int32_t rt_priority;     /* SCHED_FIFO priority of the thread (1..99); 0: normal scheduling */
};

struct cp_event {
    uint64_t t_ns; /* CLOCK_MONOTONIC */
    int32_t kind;
    int32_t a;
    int32_t b;
    int32_t u_pos_mV; /* the last sample when the event was made */
    int32_t u_neg_mV;
    int32_t reserved;
};

struct cp_stats {
    uint64_t samples;
    uint64_t glitches;
    uint64_t forced_off;      /* forced relay-offs that found a relay on */
    uint64_t cycle_ns_last;   /* one sample: reset, settle, reads, evaluation */
    uint64_t cycle_ns_max;
    uint64_t events_dropped;  /* oldest events overwritten because Python did not read them */
    int32_t u_pos_mV;
    int32_t u_neg_mV;
    int32_t state;
    uint32_t errors;
    uint32_t relays_on; /* mask */
    int32_t enabled;
    int32_t driven;
    int32_t duty_x100;  /* the cached duty (applied while enabled) */
    int32_t trip;
    uint32_t io_faults; /* bit (1 << CP_IO_*) per failing source */
    int32_t tid;        /* the thread's kernel id (for /proc/self/task/<tid>), 0 before cp_start */
    int32_t realtime;   /* 1 when the thread runs with SCHED_FIFO */
};

struct cp_core;

/* pure functions (the Python twin in everest_bsp.tarragon.cp_logic mirrors them) */
int32_t cp_voltage_mV(int32_t raw); /* raw: 0..4095 */
int32_t cp_classify(int32_t u_mV, int32_t prev);
int32_t cp_debounce_step(struct cp_debounce *d, int32_t measured);
/* prev_errors: the errors before (the diode latch, and what stays when not driven) */
void cp_evaluate(int32_t pos, int32_t neg, int32_t u_pos_mV, int32_t u_neg_mV, int32_t driven, int32_t duty_x100,
                 uint32_t prev_errors, struct cp_eval *out);
/* batch of classify+debounce over raw pairs, for the benchmark and the property tests */
void cp_process_batch(const int32_t *raw_pos, const int32_t *raw_neg, int32_t n, struct cp_debounce *pos,
                      struct cp_debounce *neg, int32_t *detected_pos, int32_t *detected_neg);

/* the core; every int function returns 0 (or a count) on success and -errno on failure */
int cp_create(const struct cp_config *cfg, struct cp_core **out);
int cp_start(struct cp_core *core);
void cp_destroy(struct cp_core *core); /* stops the thread, relays off, pilot to F */
int cp_event_fd(struct cp_core *core); /* eventfd, readable when events are queued */
int cp_read_events(struct cp_core *core, struct cp_event *buf, int max);
int cp_enable(struct cp_core *core, int on);
int cp_set_duty(struct cp_core *core, int32_t duty_x100); /* 0..10000; cached while disabled */
int cp_state_X1(struct cp_core *core);
int cp_state_F(struct cp_core *core);
int cp_state_E(struct cp_core *core);
/* 0, CP_REFUSED_*, or -errno (-EINVAL: bits beyond 0x3, -ENODEV: a relay that is not configured).
 * Refused unless enabled, driven with a duty above 0, pilot in C or D, no CP error, no trip, no
 * failing source. */
int cp_relays_on(struct cp_core *core, uint32_t mask);
int cp_relays_off(struct cp_core *core, uint32_t mask);
void cp_get_stats(struct cp_core *core, struct cp_stats *out);

#endif
