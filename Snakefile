# DCM reproduction workflow. Wiring only: every rule runs one `python -m dcm <stage>` command.
#   snakemake --cores 2                                   # tiny default, locally
#   snakemake --profile slurm                             # same DAG on a SLURM cluster (slurm/profile.yaml)
#   snakemake --profile slurm --configfile config/X.yaml  # another backbone or setting: one file, nothing merged
from snakemake.utils import min_version

min_version("9.0")

if not workflow.config_settings.configfiles:
    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/teacher.smk"
include: "workflow/rules/trajectories.smk"
include: "workflow/rules/distill.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


onstart:
    tracking.start_workflow_run(config, "snakemake")


onsuccess:
    tracking.end_workflow_run(config, "FINISHED")


onerror:
    tracking.end_workflow_run(config, "FAILED")


rule all:
    input:
        f"{RUN}/compare",
        f"{RUN}/weightdiff",
        f"{RUN}/trajdist",
        f"{RUN}/userstudy",
        f"{RUN}/figures",
        expand(f"{RUN}/tables/table{{t}}", t=["1", "3"]),
        [path(layout.table_dir, RUN, "kappa")] if config["kappa_sweep"]["values"] else [],
        [path(layout.eval_dir, RUN, s) for s in SAMPLE_SETS],
    default_target: True
