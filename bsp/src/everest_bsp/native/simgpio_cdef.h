/* SPDX-License-Identifier: Apache-2.0 */
/* Copyright contributors to everest-py */
/* cffi declarations of simgpio.h and lines.h (parsed by cffi, not by a C compiler). */
#define SIMGPIO_MAX_LINES 64
#define SIMGPIO_NAME_LEN 32
#define SIMGPIO_RING 1024
#define SIMGPIO_INPUT 1
#define SIMGPIO_OUTPUT 2
#define SIMGPIO_ACTIVE_LOW 4
#define SIMGPIO_EDGE_RISING 8
#define SIMGPIO_EDGE_FALLING 16
#define LN_NONE 0
#define LN_UAPI 1
#define LN_SIM 2

struct simgpio_chip;
struct simgpio_info {
    char name[32];
    char consumer[32];
    int32_t owner_pid;
    uint32_t flags;
    uint32_t debounce_us;
    uint32_t pull;
    uint32_t driven;
    int32_t fault;
};
struct simgpio_event {
    uint64_t ts_ns;
    uint32_t line;
    uint32_t level;
};
struct ln_ref {
    int32_t kind;
    int32_t fd;
    uint32_t index;
    uint32_t reserved;
    struct simgpio_chip *chip;
};

int simgpio_create(const char *path, const char *name, const char *label, const char *const *line_names,
                   uint32_t nlines, struct simgpio_chip **out);
int simgpio_open(const char *path, struct simgpio_chip **out);
void simgpio_close(struct simgpio_chip *chip);
int simgpio_nlines(struct simgpio_chip *chip);
int simgpio_chip_name(struct simgpio_chip *chip, char *name, char *label);
int simgpio_find(struct simgpio_chip *chip, const char *line_name);
int simgpio_info(struct simgpio_chip *chip, uint32_t offset, struct simgpio_info *out);
int simgpio_request(struct simgpio_chip *chip, const uint32_t *offsets, const uint32_t *flags,
                    const uint32_t *debounce_us, const uint32_t *values, uint32_t n, const char *consumer);
int simgpio_release(struct simgpio_chip *chip, const uint32_t *offsets, uint32_t n);
int simgpio_get(struct simgpio_chip *chip, uint32_t offset);
int simgpio_set(struct simgpio_chip *chip, uint32_t offset, int value);
int simgpio_set_many(struct simgpio_chip *chip, const uint32_t *offsets, const int *values, uint32_t n);
uint64_t simgpio_input_head(struct simgpio_chip *chip);
int simgpio_wait_input(struct simgpio_chip *chip, uint64_t seen_head, int timeout_ms);
int simgpio_read_input(struct simgpio_chip *chip, uint64_t *cursor, struct simgpio_event *buf, int max);
int simgpio_set_pull(struct simgpio_chip *chip, uint32_t offset, int level);
int simgpio_set_fault(struct simgpio_chip *chip, uint32_t offset, int errno_value);
int simgpio_physical(struct simgpio_chip *chip, uint32_t offset);
uint64_t simgpio_output_head(struct simgpio_chip *chip);
int simgpio_wait_output(struct simgpio_chip *chip, uint64_t seen_head, int timeout_ms);
int simgpio_read_output(struct simgpio_chip *chip, uint64_t *cursor, struct simgpio_event *buf, int max);
int simgpio_reap(struct simgpio_chip *chip);
uint64_t simgpio_now_ns(void);
int ln_set(const struct ln_ref *line, int value);
int ln_get(const struct ln_ref *line);
