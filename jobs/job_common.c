/* jobs/job_common.c — see jobs/job_common.h. */
#include "jobs/job_common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void lisa_job_notice(lisa_job_notice_fn fn, void *ctx, const char *fmt, ...) {
    if (!fn) return;
    char msg[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fn(ctx, msg);
}

lisa_status lisa_job_load_model(const char *dir, lisa_model_params params, bool tensor_parallel,
                                lisa_job_notice_fn fn, void *ctx, lisa_model **out) {
    if (!tensor_parallel) params.tensor_parallel = 0;
    const lisa_status s = lisa_model_load(dir, &params, out);
    if (s != LISA_OK) return s;
    lisa_model_info info;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    if (params.backend == LISA_BACKEND_AUTO && lisa_model_get_info(*out, &info) == LISA_OK && info.tp_rank == 0)
        lisa_job_notice(fn, ctx, "backend auto: %s (%s)", info.backend_name, info.device_name);
    return LISA_OK;
}
