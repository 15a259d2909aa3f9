/* SPDX-License-Identifier: Apache-2.0 */
/* Copyright contributors to everest-py */
/*
 * One GPIO output or input as the C helpers see it, whether it is a real line (a request file
 * descriptor of the kernel's GPIO character device, uAPI v2) or a line of the simulated chip.
 * Python requests the lines (everest_bsp.hal.gpio) and hands the C side a filled ln_ref; the code
 * that decides to switch a relay off is the same for both, only ln_set's last step differs.
 * Values are logical: active-low is part of the request, as in the kernel.
 */
#ifndef EVEREST_BSP_LINES_H
#define EVEREST_BSP_LINES_H

#include <stdint.h>

#include "simgpio.h"

#define LN_NONE 0 /* not configured: ln_set/ln_get succeed and do nothing / read 0 */
#define LN_UAPI 1 /* fd: line request fd; index: position of the line in that request */
#define LN_SIM 2  /* chip: simulated chip; index: line offset on the chip */

struct ln_ref {
    int32_t kind;
    int32_t fd;
    uint32_t index;
    uint32_t reserved;
    struct simgpio_chip *chip;
};

int ln_set(const struct ln_ref *line, int value); /* 0 or -errno */
int ln_get(const struct ln_ref *line);            /* 0/1 or -errno */

#endif
