/* SPDX-License-Identifier: Apache-2.0 */
/* Copyright contributors to everest-py */
/* ln_set/ln_get: the last step to a real GPIO line (uAPI v2 ioctl) or a simulated one. */
#include "lines.h"

#include <errno.h>
#include <linux/gpio.h>
#include <string.h>
#include <sys/ioctl.h>

int ln_set(const struct ln_ref *line, int value)
{
    switch (line->kind) {
    case LN_NONE:
        return 0;
    case LN_UAPI: {
        struct gpio_v2_line_values v;
        memset(&v, 0, sizeof(v));
        v.mask = 1ull << line->index;
        v.bits = value ? v.mask : 0;
        return ioctl(line->fd, GPIO_V2_LINE_SET_VALUES_IOCTL, &v) < 0 ? -errno : 0;
    }
    case LN_SIM:
        return simgpio_set(line->chip, line->index, value);
    default:
        return -EINVAL;
    }
}

int ln_get(const struct ln_ref *line)
{
    switch (line->kind) {
    case LN_NONE:
        return 0;
    case LN_UAPI: {
        struct gpio_v2_line_values v;
        memset(&v, 0, sizeof(v));
        v.mask = 1ull << line->index;
        if (ioctl(line->fd, GPIO_V2_LINE_GET_VALUES_IOCTL, &v) < 0)
            return -errno;
        return (v.bits & v.mask) ? 1 : 0;
    }
    case LN_SIM:
        return simgpio_get(line->chip, line->index);
    default:
        return -EINVAL;
    }
}
