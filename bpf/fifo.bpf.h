/* SPDX-License-Identifier: GPL-2.0 */
/*
 * fifo and rr: the key is when the task started waiting. rr gives every turn
 * the slice of slice_us; fifo lets a task run until it sleeps, but not for
 * ever: a CPU hog would starve everything queued behind it into the kernel's
 * watchdog.
 */
#ifndef __LLMOS_FIFO_BPF_H
#define __LLMOS_FIFO_BPF_H

#include "llmos.bpf.h"

#define FIFO_MAX_RUN_NS 100000000ULL /* 100 ms */

#endif /* __LLMOS_FIFO_BPF_H */
