"""A reconstructable handle on the multiprocess refresh job (child processes re-import it by module name)."""

import dagster as dg


def refresh_job_multiprocess() -> dg.JobDefinition:
    from orchestration.definitions import defs

    return defs.resolve_job_def("segmint_refresh_multiprocess")
