# PROPOSAL (not included by the Snakefile yet): trajectory generation fanned out over
# `trajectories.jobs` GPU jobs, and the latents stage of the online mode. To adopt it, delete
# `rule trajectories` from teacher.smk, `include:` this file after teacher.smk, and make the
# distillation rules take TEACHER_PAIRS as input instead of f"{RUN}/trajectories".
#
# Each `trajectory_shards` job writes shards i with i mod jobs = K into <run>/trajectories.partial/
# (atomically, one shard at a time; a rerun skips complete shards), then touches its marker; the
# `trajectories` rule finds every shard complete, writes the manifest and moves the cache into place.
# The markers are temp(): they go once the cache exists, so a finished cache never reruns its jobs.
TRAJECTORY_JOBS = config["trajectories"]["jobs"]
TEACHER_PAIRS = f"{RUN}/latents" if config["trajectories"]["mode"] == "online" else f"{RUN}/trajectories"


rule trajectory_shards:
    input:
        f"{RUN}/dataset",
        f"{RUN}/teacher",
    output:
        temp(f"{RUN}/trajectories.jobs/{{job}}-of-{TRAJECTORY_JOBS}.done"),
    wildcard_constraints:
        job=r"\d+",
    log:
        f"{RUN}/logs/trajectories-{{job}}-of-{TRAJECTORY_JOBS}.log",
    benchmark:
        f"{RUN}/benchmarks/trajectories-{{job}}-of-{TRAJECTORY_JOBS}.tsv"
    threads: THREADS
    resources:
        **resources_of("trajectories"),
    shell:
        dcm("trajectories") + f" --shard {{wildcards.job}} --shards {TRAJECTORY_JOBS} > {{log:q}} 2>&1"
        " && touch {output:q}"


rule trajectories:
    input:
        f"{RUN}/dataset",
        f"{RUN}/teacher",
        expand(f"{RUN}/trajectories.jobs/{{job}}-of-{TRAJECTORY_JOBS}.done", job=range(TRAJECTORY_JOBS))
        if TRAJECTORY_JOBS > 1 else [],
    output:
        directory(f"{RUN}/trajectories"),
    log:
        f"{RUN}/logs/trajectories.log",
    benchmark:
        f"{RUN}/benchmarks/trajectories.tsv"
    threads: THREADS
    resources:
        **resources_of("trajectories"),
    shell:
        dcm("trajectories") + " > {log:q} 2>&1"


rule latents:
    input:
        f"{RUN}/teacher",
        config["trajectories"].get("videos", []),
    output:
        directory(f"{RUN}/latents"),
    log:
        f"{RUN}/logs/latents.log",
    benchmark:
        f"{RUN}/benchmarks/latents.tsv"
    threads: THREADS
    resources:
        **resources_of("latents"),
    shell:
        dcm("latents") + " > {log:q} 2>&1"
