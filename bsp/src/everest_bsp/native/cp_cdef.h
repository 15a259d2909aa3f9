/* SPDX-License-Identifier: Apache-2.0 */
/* Copyright contributors to everest-py */
/* cffi declarations of cp.h (parsed by cffi, not by a C compiler); struct ln_ref is in simgpio_cdef.h. */
#define CP_A 0
#define CP_B 1
#define CP_C 2
#define CP_D 3
#define CP_E 4
#define CP_F 5
#define CP_PILOT_FAULT 6
#define CP_UNKNOWN 7
#define CP_ERR_SHORT 1
#define CP_ERR_DIODE 2
#define CP_ERR_VENTILATION 4
#define CP_ERR_PILOT 8
#define CP_EV_STATE 1
#define CP_EV_ERROR 2
#define CP_EV_RELAYS_OFF 3
#define CP_EV_GLITCH 4
#define CP_EV_TRIP 5
#define CP_EV_IO 6
#define CP_OFF_STATE 1
#define CP_OFF_FAULT 2
#define CP_OFF_OUTPUT 3
#define CP_OFF_TRIP 4
#define CP_OFF_IO 5
#define CP_IO_ADC_POS 1
#define CP_IO_ADC_NEG 2
#define CP_IO_PWM 3
#define CP_IO_RESET 4
#define CP_IO_TRIP 5
#define CP_IO_INVERT 6
#define CP_IO_RELAY 7
#define CP_REFUSED_STATE 1
#define CP_REFUSED_FAULT 2
#define CP_REFUSED_TRIP 3
#define CP_REFUSED_IO 4
#define CP_DB_NONE 0
#define CP_DB_CHANGED 1
#define CP_DB_GLITCH 2
#define CP_ERROR_VOLTAGE_MAX_DIFF 1200
#define CP_SHORT_U_POS_MAX 2000
#define CP_NEG_12V_MIN ...

struct cp_debounce {
    int32_t t0;
    int32_t t1;
    int32_t detected;
};
struct cp_eval {
    int32_t state;
    uint32_t errors;
};
struct cp_config {
    int32_t adc_pos_fd;
    int32_t adc_neg_fd;
    struct ln_ref rst_pos;
    struct ln_ref rst_neg;
    struct ln_ref cp_invert;
    int32_t pwm_duty_fd;
    int32_t pwm_enable_fd;
    int32_t pwm_period_fd;
    uint32_t period_ns;
    struct ln_ref relays[2];
    struct ln_ref trip;
    uint32_t reset_us;
    uint32_t settle_us;
    uint32_t idle_poll_us;
    int32_t rt_priority;
};
struct cp_event {
    uint64_t t_ns;
    int32_t kind;
    int32_t a;
    int32_t b;
    int32_t u_pos_mV;
    int32_t u_neg_mV;
    int32_t reserved;
};
struct cp_stats {
    uint64_t samples;
    uint64_t glitches;
    uint64_t forced_off;
    uint64_t cycle_ns_last;
    uint64_t cycle_ns_max;
    uint64_t events_dropped;
    int32_t u_pos_mV;
    int32_t u_neg_mV;
    int32_t state;
    uint32_t errors;
    uint32_t relays_on;
    int32_t enabled;
    int32_t driven;
    int32_t duty_x100;
    int32_t trip;
    uint32_t io_faults;
    int32_t tid;
    int32_t realtime;
};
struct cp_core;

int32_t cp_voltage_mV(int32_t raw);
int32_t cp_classify(int32_t u_mV, int32_t prev);
int32_t cp_debounce_step(struct cp_debounce *d, int32_t measured);
void cp_evaluate(int32_t pos, int32_t neg, int32_t u_pos_mV, int32_t u_neg_mV, int32_t driven, int32_t duty_x100,
                 uint32_t prev_errors, struct cp_eval *out);
void cp_process_batch(const int32_t *raw_pos, const int32_t *raw_neg, int32_t n, struct cp_debounce *pos,
                      struct cp_debounce *neg, int32_t *detected_pos, int32_t *detected_neg);
int cp_create(const struct cp_config *cfg, struct cp_core **out);
int cp_start(struct cp_core *core);
void cp_destroy(struct cp_core *core);
int cp_event_fd(struct cp_core *core);
int cp_read_events(struct cp_core *core, struct cp_event *buf, int max);
int cp_enable(struct cp_core *core, int on);
int cp_set_duty(struct cp_core *core, int32_t duty_x100);
int cp_state_X1(struct cp_core *core);
int cp_state_F(struct cp_core *core);
int cp_state_E(struct cp_core *core);
int cp_relays_on(struct cp_core *core, uint32_t mask);
int cp_relays_off(struct cp_core *core, uint32_t mask);
void cp_get_stats(struct cp_core *core, struct cp_stats *out);
